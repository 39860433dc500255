// The gRPC InferenceService (callback API). Each Generate call is one
// reactor that owns its output stream and writes one message at a time, so
// a slow client pauses its own sequence instead of growing server memory; a
// client that stops reading altogether loses its stream after the engine's
// stall timeout (the reactor then cancels the call).
//
// Every method is registered raw (grpc::ByteBuffer in and out) and parses its
// request itself: gRPC's typed handlers answer a request that is not valid
// protobuf with UNIMPLEMENTED and no message, while inference.proto promises
// INVALID_ARGUMENT naming what is wrong.
//
// Every call is authorized first (ClientAuthPolicy): the caller's identity
// owns the Generate requests it starts, and only it can Abort them.
// Internal status is mapped to grpc::Status in one place (ToGrpc).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/grpcpp.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/backend.h"
#include "inference_worker/serving/engine.h"
#include "inference_worker/text/tokenizer.h"
#include "inference_worker/worker/request_builder.h"
#include "ossgate/inference/v1/inference.grpc.pb.h"

namespace ossgate::worker {

// Who may call. With require_identity, a call needs a client certificate
// whose spiffe://ossgate/role/<role>/<id> identity has one of `roles`
// (client_identity.h); the identity owns the call's requests. Without it
// (plaintext development, or TLS without client authentication, both only
// by explicit flags) every caller is the same anonymous owner.
struct ClientAuthPolicy {
  bool require_identity = true;
  std::vector<std::string> roles = {"client"};
};

// Counts what the service refuses (metrics). Called on gRPC threads.
class ServiceObserver {
 public:
  virtual ~ServiceObserver() = default;
  // A Generate call ended with `code` before any output: bad request,
  // capacity, identity, not loaded or shutting down.
  virtual void OnGenerateRefused(grpc::StatusCode code) = 0;
};

using RawService = ossgate::inference::v1::InferenceService::WithRawCallbackMethod_Generate<
    ossgate::inference::v1::InferenceService::WithRawCallbackMethod_Abort<
        ossgate::inference::v1::InferenceService::WithRawCallbackMethod_Tokenize<
            ossgate::inference::v1::InferenceService::WithRawCallbackMethod_Detokenize<
                ossgate::inference::v1::InferenceService::WithRawCallbackMethod_GetModelInfo<
                    ossgate::inference::v1::InferenceService::Service>>>>>;

class InferenceServiceImpl final : public RawService {
 public:
  // `observer` (may be null) must outlive the service; `log` (may be null)
  // receives refusals of unauthorized callers, with their certificate.
  InferenceServiceImpl(ClientAuthPolicy policy, ServiceObserver* observer, std::function<void(const std::string&)> log);

  // Publishes the loaded model; before this every rpc returns UNAVAILABLE.
  void SetModel(const LoadedModelView* model);
  // Stops admitting Generate calls (UNAVAILABLE); running streams continue.
  void StopAccepting() { accepting_.store(false); }

  // Validates a request and turns it into an engine request
  // (BuildGenerationRequest, with the proto's field names). Public for tests.
  static absl::StatusOr<serving::GenerationRequest> BuildRequest(const ossgate::inference::v1::GenerateRequest& req,
                                                                 const LoadedModelView& model);
  // The stream message for one engine output chunk (`seed`: the sampling
  // seed, reported in Final). Public for tests.
  static ossgate::inference::v1::GenerateResponse ToResponse(const serving::OutputChunk& chunk,
                                                             const std::string& request_id, uint64_t seed);

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerUnaryReactor* Abort(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;

 private:
  // The caller's owner name ("" for anonymous), or the refusal (logged).
  absl::StatusOr<std::string> Authorize(grpc::CallbackServerContext* ctx, const char* method) const;
  // Parses the request, authorizes the caller and runs `handle` (which fills
  // the response) when the model is loaded; one reactor for every unary rpc.
  template <class Request, class Response, class Handle>
  grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                                  grpc::ByteBuffer* response, const char* method, Handle handle);

  static absl::Status DoAbort(const std::string& owner, const LoadedModelView& m,
                              const ossgate::inference::v1::AbortRequest& req,
                              ossgate::inference::v1::AbortResponse* resp);
  static absl::Status DoTokenize(const LoadedModelView& m, const ossgate::inference::v1::TokenizeRequest& req,
                                 ossgate::inference::v1::TokenizeResponse* resp);
  static absl::Status DoDetokenize(const LoadedModelView& m, const ossgate::inference::v1::DetokenizeRequest& req,
                                   ossgate::inference::v1::DetokenizeResponse* resp);

  const LoadedModelView* model() const { return model_.load(); }

  const ClientAuthPolicy policy_;
  ServiceObserver* const observer_;
  const std::function<void(const std::string&)> log_;
  std::atomic<const LoadedModelView*> model_{nullptr};
  std::atomic<bool> accepting_{true};
};

grpc::Status ToGrpc(const absl::Status& s);

}  // namespace ossgate::worker
