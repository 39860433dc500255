// The gRPC InferenceService (callback API). Each Generate call is one
// reactor that owns its output stream and writes one message at a time, so
// a slow client pauses its own sequence instead of growing server memory.
// Internal status is mapped to grpc::Status in one place (ToGrpc).
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/engine.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/text/tokenizer.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"

namespace ossgate::worker {

// Everything the service needs once the model is loaded. Owned elsewhere;
// must outlive the service's use of it.
struct LoadedModelView {
  const gguf::GgufFile* file = nullptr;
  const text::Tokenizer* tokenizer = nullptr;
  serving::Engine* engine = nullptr;
  const model::ModelConfig* config = nullptr;
  int context_length = 0;  // serving limit per sequence
  ossgate::inference::v1::ModelInfo info;  // static part of GetModelInfo
};

class InferenceServiceImpl final : public ossgate::inference::v1::InferenceService::CallbackService {
 public:
  InferenceServiceImpl() = default;

  // Publishes the loaded model; before this every rpc returns UNAVAILABLE.
  void SetModel(const LoadedModelView* model);
  // Stops admitting Generate calls (UNAVAILABLE); running streams continue.
  void StopAccepting() { accepting_.store(false); }

  // Validates a request and turns it into an engine request. Public for tests.
  static absl::StatusOr<serving::GenerationRequest> BuildRequest(const ossgate::inference::v1::GenerateRequest& req,
                                                                 const LoadedModelView& model);

  grpc::ServerWriteReactor<ossgate::inference::v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* ctx, const ossgate::inference::v1::GenerateRequest* req) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const ossgate::inference::v1::AbortRequest* req,
                                  ossgate::inference::v1::AbortResponse* resp) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx,
                                     const ossgate::inference::v1::TokenizeRequest* req,
                                     ossgate::inference::v1::TokenizeResponse* resp) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx,
                                       const ossgate::inference::v1::DetokenizeRequest* req,
                                       ossgate::inference::v1::DetokenizeResponse* resp) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx,
                                         const ossgate::inference::v1::GetModelInfoRequest* req,
                                         ossgate::inference::v1::ModelInfo* resp) override;

 private:
  const LoadedModelView* model() const { return model_.load(); }
  std::atomic<const LoadedModelView*> model_{nullptr};
  std::atomic<bool> accepting_{true};
};

grpc::Status ToGrpc(const absl::Status& s);

}  // namespace ossgate::worker
