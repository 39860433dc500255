#include "inference_worker/worker/model_gate.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace ossgate::worker {

absl::StatusOr<VerifiedModel> LoadVerifiedModel(const GateConfig& config, ProvenanceClient& client, const GateLog& log,
                                                std::function<absl::Time()> now) {
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  if (config.pinned_keys.empty()) {
    return absl::FailedPreconditionError(
        "no provenance public key is pinned; pass the service's token key(s) so approvals can be verified");
  }

  // 1. Read once, hashing.
  say(absl::StrCat("phase=hashing path=", config.model_path));
  auto bytes = model::ReadModelFile(config.model_path, config.max_model_bytes, [&](const model::ReadProgress& p) {
    say(absl::StrFormat("phase=hashing bytes=%d/%d rate=%.1fMB/s", p.bytes_done, p.bytes_total,
                        p.seconds > 0 ? p.bytes_done / 1e6 / p.seconds : 0.0));
  });
  if (!bytes.ok()) return bytes.status();
  say(absl::StrCat("phase=hashed sha256=", bytes->sha256(), " size=", bytes->size()));

  // 2. Ask the service, retrying while it is unreachable.
  VerifyRequest req{config.model_name, config.source_uri, bytes->sha256(), bytes->size(), config.worker_id};
  const absl::Time deadline = now() + config.verify_deadline;
  absl::Duration backoff = config.initial_backoff;
  absl::StatusOr<Verdict> verdict;
  for (int attempt = 1;; ++attempt) {
    say(absl::StrCat("phase=verifying attempt=", attempt, " source=", config.source_uri));
    verdict = client.VerifyModel(req);
    if (verdict.ok()) break;
    const auto code = verdict.status().code();
    const bool retry = code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
    if (!retry) {
      return absl::Status(verdict.status().code(),
                          absl::StrCat("provenance service refused the request: ", verdict.status().message()));
    }
    if (now() + backoff > deadline) {
      return absl::UnavailableError(absl::StrCat("provenance service unreachable for ",
                                                 absl::FormatDuration(config.verify_deadline), " (last error: ",
                                                 verdict.status().message(), "); model not loaded"));
    }
    say(absl::StrCat("phase=verifying retry_in=", absl::FormatDuration(backoff), " error=", verdict.status().message()));
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
  if (!verdict->verified) {
    return absl::PermissionDeniedError(absl::StrCat("provenance service rejected the model: ", verdict->reason,
                                                    verdict->detail.empty() ? "" : absl::StrCat(" (", verdict->detail, ")"),
                                                    "; audit log index ", verdict->log_index));
  }

  // 3. Verify the token ourselves; never trust the verdict alone.
  token::ApprovalTokenVerifier verifier;
  for (const std::string& raw : config.pinned_keys) {
    auto key = token::Ed25519PublicKey::FromRaw(raw);
    if (!key.ok()) return absl::FailedPreconditionError(absl::StrCat("pinned key: ", key.status().message()));
    verifier.AddKey(*std::move(key));
  }
  token::ApprovalExpectations expect;
  expect.worker_id = config.worker_id;
  expect.issuer = config.issuer;
  expect.model_sha256 = bytes->sha256();
  expect.model_size = bytes->size();
  const absl::Time verified_at = now();
  auto claims = verifier.Verify(verdict->approval_token, expect, verified_at);
  if (!claims.ok()) {
    return absl::UnauthenticatedError(absl::StrCat("approval token rejected: ", claims.status().message(),
                                                    "; model not loaded"));
  }
  say(absl::StrCat("phase=verified token_id=", claims->token_id, " key_id=", claims->key_id,
                   " log_index=", claims->log_index, " expires=", token::FormatTokenTime(claims->expires_at)));

  VerifiedModel out;
  out.bytes = *std::move(bytes);
  out.claims = *std::move(claims);
  out.approval_token = verdict->approval_token;
  out.matched_source = verdict->matched_source;
  out.verified_at = verified_at;
  return out;
}

}  // namespace ossgate::worker
