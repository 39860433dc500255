#include "inference_worker/worker/model_gate.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "inference_worker/worker/worker_log.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/paseto.h"

namespace ossgate::worker {

namespace {

// Large reads: the kernel's read-ahead keeps the disk busy while a chunk is
// hashed, and a device sink copies few, large pieces.
constexpr uint64_t kReadChunkBytes = uint64_t{64} << 20;

// The form of token::TokenKeyId: 16 lowercase hex digits.
bool IsKeyIdForm(const std::string& kid) {
  return kid.size() == 16 &&
         std::all_of(kid.begin(), kid.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// The footer is not authenticated (anyone between us and the service, or a
// compromised service, writes it), yet it chooses the key and used to reach
// the log verbatim: a forged key id could print a line of its own ("phase=
// verified ..."). It must have the form of a key id before it is looked up
// or shown, and is shown only quoted.
absl::Status CheckFooterKeyId(const std::string& token) {
  auto footer = token::paseto::UntrustedFooter(token);
  if (!footer.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("approval token rejected: ", EscapeControl(footer.status().message()), "; model not loaded"));
  }
  auto value = token::json::Parse(*footer, 2);
  const token::json::Value* kid = value.ok() && value->is_object() ? value->Find("kid") : nullptr;
  if (kid == nullptr || !kid->is_string()) {
    return absl::UnauthenticatedError(
        "approval token rejected: its footer has no key id (\"kid\" string); model not loaded");
  }
  if (!IsKeyIdForm(kid->text())) {
    return absl::UnauthenticatedError(absl::StrCat("approval token rejected: the footer's key id ",
                                                   Quote(kid->text(), 40),
                                                   " is not 16 lowercase hex digits; model not loaded"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<VerifiedModel> LoadVerifiedModel(const GateConfig& config, ProvenanceClient& client, const GateLog& log,
                                                std::function<absl::Time()> now, model::ModelSink* sink) {
  auto say = [&](const std::string& line) {
    if (log) log(line);
  };
  if (config.pinned_keys.empty()) {
    return absl::FailedPreconditionError(
        "no provenance public key is pinned; pass the service's token key(s) so approvals can be verified");
  }

  // 1. Read once, hashing, into the backend's sink (host memory by default).
  say(absl::StrCat("phase=hashing path=", LogValue(config.model_path), " into=", sink ? "device" : "host"));
  bool hashing_hooked = false;
  model::HostModelSink host;
  auto bytes = model::StreamModelFile(
      config.model_path, config.max_model_bytes, sink ? *sink : host,
      [&](const model::ReadProgress& p) {
        if (config.phase_hook && !hashing_hooked) {
          hashing_hooked = true;
          config.phase_hook("hashing");
        }
        say(absl::StrFormat("phase=hashing bytes=%d/%d rate=%.1fMB/s", p.bytes_done, p.bytes_total,
                            p.seconds > 0 ? p.bytes_done / 1e6 / p.seconds : 0.0));
      },
      kReadChunkBytes);
  if (!bytes.ok()) return bytes.status();
  say(absl::StrFormat("phase=hashed sha256=%s size=%d seconds=%.3f", bytes->sha256, bytes->size, bytes->seconds));

  // 2. Ask the service, retrying while it is unreachable.
  VerifyRequest req{config.model_name, config.source_uri, bytes->sha256, bytes->size, config.worker_id};
  const absl::Time deadline = now() + config.verify_deadline;
  absl::Duration backoff = config.initial_backoff;
  absl::StatusOr<Verdict> verdict;
  for (int attempt = 1;; ++attempt) {
    say(absl::StrCat("phase=verifying attempt=", attempt, " source=", LogValue(config.source_uri)));
    if (config.phase_hook) config.phase_hook("verifying");
    verdict = client.VerifyModel(req);
    if (verdict.ok()) break;
    const auto code = verdict.status().code();
    const bool retry = code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded;
    // The messages come from the service or the network: quoted.
    if (!retry) {
      return absl::Status(verdict.status().code(),
                          absl::StrCat("the provenance service call failed (not retried): ",
                                       Quote(verdict.status().message(), 1024), "; model not loaded"));
    }
    if (now() + backoff > deadline) {
      return absl::UnavailableError(
          absl::StrCat("provenance service unreachable for ", absl::FormatDuration(config.verify_deadline),
                       " (last error: ", Quote(verdict.status().message(), 512), "); model not loaded"));
    }
    say(absl::StrCat("phase=verifying retry_in=", absl::FormatDuration(backoff),
                     " error=", Quote(verdict.status().message(), 512)));
    std::this_thread::sleep_for(absl::ToChronoMilliseconds(backoff));
    backoff = std::min(backoff * 2, absl::Seconds(10));
  }
  if (!verdict->verified) {
    return absl::PermissionDeniedError(
        absl::StrCat("provenance service rejected the model: ", LogValue(verdict->reason, 64),
                     verdict->detail.empty() ? "" : absl::StrCat(" (", Quote(verdict->detail, 512), ")"),
                     "; audit log index ", verdict->log_index));
  }

  // 3. Verify the token ourselves; never trust the verdict alone.
  if (absl::Status s = CheckFooterKeyId(verdict->approval_token); !s.ok()) return s;
  token::ApprovalTokenVerifier verifier;
  for (const std::string& raw : config.pinned_keys) {
    auto key = token::Ed25519PublicKey::FromRaw(raw);
    if (!key.ok()) return absl::FailedPreconditionError(absl::StrCat("pinned key: ", key.status().message()));
    verifier.AddKey(*std::move(key));
  }
  token::ApprovalExpectations expect;
  expect.worker_id = config.worker_id;
  expect.issuer = config.issuer;
  expect.model_sha256 = bytes->sha256;
  expect.model_size = bytes->size;
  const absl::Time verified_at = now();
  auto claims = verifier.Verify(verdict->approval_token, expect, verified_at);
  if (!claims.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("approval token rejected: ", EscapeControl(claims.status().message()), "; model not loaded"));
  }
  say(absl::StrCat("phase=verified token_id=", LogValue(claims->token_id, 64), " key_id=", LogValue(claims->key_id, 64),
                   " log_index=", claims->log_index, " family=", claims->model_family,
                   claims->model_family_implied ? " (token without a family claim)" : "",
                   " expires=", token::FormatTokenTime(claims->expires_at)));

  VerifiedModel out;
  if (!sink) out.bytes = host.Take(*bytes);
  out.digest = *std::move(bytes);
  out.claims = *std::move(claims);
  out.approval_token = verdict->approval_token;
  out.matched_source = verdict->matched_source;
  out.verified_at = verified_at;
  return out;
}

absl::Status CheckApprovedFamily(const token::ApprovalClaims& claims, const gguf::GgufFile& file) {
  // The claim passed IsModelFamily in the verifier: safe to show as is. The
  // architecture is the file's own text: quoted.
  const std::string approved =
      absl::StrCat("model family \"", claims.model_family, "\"",
                   claims.model_family_implied
                       ? " (the token names no family: a provenance service older than model families issued it, "
                         "and those approved gpt-oss models only)"
                       : "");
  const std::string approval = absl::StrCat("token ", LogValue(claims.token_id, 64), ", audit log index ",
                                            claims.log_index);
  auto arch = file.GetString("general.architecture");
  if (!arch.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the approval (", approval, ") is for ", approved,
        " but the file has no general.architecture string to check it against (", EscapeControl(arch.status().message()),
        "); model not loaded"));
  }
  if (*arch != claims.model_family) {
    return absl::PermissionDeniedError(absl::StrCat(
        "the approval (", approval, ") is for ", approved, " but the file's general.architecture is ", Quote(*arch, 64),
        "; model not loaded. If the file is such a model from a trusted source, have the registry name its family "
        "(provctl trust set-family --source=<source> --path=<path> --sha256=", claims.model_sha256, " --family=",
        token::IsModelFamily(*arch) ? *arch : "<family>", ")"));
  }
  return absl::OkStatus();
}

}  // namespace ossgate::worker
