// The provenance gate: the only way the worker obtains model bytes to load.
//
//   1. Open the file once (no symlinks, regular file), read it once into
//      private memory (host, or the device through a ModelSink) while
//      computing SHA-256. Nothing is parsed yet.
//   2. Ask the provenance service: VerifyModel(name, source, sha256, size,
//      worker id). Retries with backoff while the service is unreachable, up
//      to a deadline.
//   3. Verify the approval token locally: the footer's key id must look like
//      a key id (16 lowercase hex digits) before it selects a pinned key;
//      then signature with that key, issuer, audience = own worker id, model
//      hash and size = what this process computed, time window.
//   4. Only then hand out the bytes; the caller parses exactly these bytes
//      and, before binding anything to them, checks with CheckApprovedFamily
//      that the file is of the model family the approval names.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "inference_worker/gguf/gguf.h"
#include "inference_worker/model/model_file.h"
#include "provenance_service/token/approval_token.h"

namespace ossgate::worker {

// The verdict as the worker needs it (a transport-free view of
// VerifyModelResponse), so tests can fake the service.
struct Verdict {
  bool verified = false;
  std::string reason;  // machine-readable, e.g. "REASON_UNTRUSTED_SOURCE"
  std::string detail;
  std::string approval_token;
  uint64_t log_index = 0;
  std::string matched_source;
};

struct VerifyRequest {
  std::string name;
  std::string source_uri;
  std::string sha256;
  uint64_t size = 0;
  std::string worker_id;
};

class ProvenanceClient {
 public:
  virtual ~ProvenanceClient() = default;
  // UNAVAILABLE / DEADLINE_EXCEEDED mean "try again"; other errors are final
  // (a failed TLS verification is one: the same configuration fails again).
  virtual absl::StatusOr<Verdict> VerifyModel(const VerifyRequest& request) = 0;
};

struct GateConfig {
  std::string model_path;
  std::string model_name;
  std::string source_uri;
  std::string worker_id;
  std::string issuer;  // expected token issuer; empty = any
  std::vector<std::string> pinned_keys;  // raw 32-byte Ed25519 public keys of the token signer(s)
  absl::Duration verify_deadline = absl::Minutes(2);  // total time for retries
  absl::Duration initial_backoff = absl::Milliseconds(200);
  uint64_t max_model_bytes = uint64_t{1} << 40;
  // Tests only (may be null): called on the main thread on entering
  // "hashing" (while the file is read) and before each VerifyModel call
  // ("verifying").
  std::function<void(absl::string_view phase)> phase_hook;
};

struct VerifiedModel {
  model::FileDigest digest;  // path, size and SHA-256 of the verified bytes
  model::ModelBytes bytes;   // the bytes, when no sink was given (else empty)
  token::ApprovalClaims claims;
  std::string approval_token;
  std::string matched_source;
  absl::Time verified_at;
};

// Logs progress lines (phase, bytes, rate) through `log`.
using GateLog = std::function<void(const std::string&)>;

// Runs the gate. PermissionDenied when the service rejected the model
// (message names the reason), Unauthenticated when the token does not
// verify, Unavailable when the service stayed unreachable until the
// deadline, the final error of the client otherwise (e.g. a failed TLS
// verification), and the file errors of ReadModelFile. Text that came from
// the service or the token is quoted/escaped in the messages and log lines.
// With a `sink` (the CUDA backend's DeviceModelImage) the file streams into
// it instead of host memory and VerifiedModel::bytes stays empty; on any
// error the sink's content must not be used.
absl::StatusOr<VerifiedModel> LoadVerifiedModel(const GateConfig& config, ProvenanceClient& client,
                                                const GateLog& log, std::function<absl::Time()> now = absl::Now,
                                                model::ModelSink* sink = nullptr);

// The approval names a model family (token claim model_family; gpt-oss for a
// token without one, as services before families issued): a file approved
// as one family must not be served as another. Call after parsing the
// approved bytes and before anything is bound to them. PermissionDenied
// naming both when the file's general.architecture differs from the
// approved family (a registry matter: the admin names the file's family,
// provctl trust set-family); FailedPrecondition when the file has no
// general.architecture string.
absl::Status CheckApprovedFamily(const token::ApprovalClaims& claims, const gguf::GgufFile& file);

}  // namespace ossgate::worker
