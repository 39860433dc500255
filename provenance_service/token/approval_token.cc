#include "provenance_service/token/approval_token.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/paseto.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::token {
namespace {

absl::StatusOr<std::string> RequireString(const json::Value& obj, std::string_view key) {
  const json::Value* v = obj.Find(key);
  if (v == nullptr || !v->is_string() || v->text().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("claim \"", std::string(key), "\" missing or not a string"));
  }
  return v->text();
}

absl::StatusOr<uint64_t> RequireDecimal(const json::Value& obj, std::string_view key) {
  auto s = RequireString(obj, key);
  if (!s.ok()) return s.status();
  uint64_t v = 0;
  if (s->size() > 20 || (s->size() > 1 && (*s)[0] == '0')) {
    return absl::InvalidArgumentError(absl::StrCat("claim \"", std::string(key), "\" is not a canonical decimal"));
  }
  for (char c : *s) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat("claim \"", std::string(key), "\" is not a decimal"));
    }
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) {
      return absl::InvalidArgumentError(absl::StrCat("claim \"", std::string(key), "\" overflows"));
    }
    v = v * 10 + d;
  }
  return v;
}

absl::StatusOr<absl::Time> RequireTime(const json::Value& obj, std::string_view key) {
  auto s = RequireString(obj, key);
  if (!s.ok()) return s.status();
  auto t = ParseTokenTime(*s);
  if (!t.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("claim \"", std::string(key), "\": ", t.status().message()));
  }
  return *t;
}

absl::Time TruncateToSeconds(absl::Time t) { return absl::FromUnixSeconds(absl::ToUnixSeconds(t)); }

std::string Footer(std::string_view kid) {
  return json::ObjectWriter().String("kid", kid).Finish();
}

}  // namespace

bool IsModelFamily(std::string_view family) {
  if (family.empty() || family.size() > 64) return false;
  auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
  if (!alnum(family[0])) return false;
  for (char c : family) {
    if (!alnum(c) && c != '.' && c != '_' && c != '-') return false;
  }
  return true;
}

std::string TokenKeyId(const Ed25519PublicKey& key) { return Sha256Hex(key.raw()).substr(0, 16); }

std::string FormatTokenTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

absl::StatusOr<absl::Time> ParseTokenTime(std::string_view s) {
  if (s.size() < 20 || s.size() > 40) return absl::InvalidArgumentError("bad RFC 3339 time");
  std::string text(s);
  // absl's %Ez takes a numeric offset; RFC 3339 also allows "Z".
  if (text.back() == 'Z' || text.back() == 'z') {
    text.pop_back();
    text += "+00:00";
  }
  absl::Time t;
  std::string err;
  if (!absl::ParseTime("%Y-%m-%d%ET%H:%M:%E*S%Ez", text, &t, &err)) {
    return absl::InvalidArgumentError("bad RFC 3339 time: " + err);
  }
  return t;
}

std::string EncodeApprovalClaims(const ApprovalClaims& c) {
  json::ObjectWriter w;
  w.String("typ", kApprovalTokenType)
      .String("iss", c.issuer)
      .String("aud", c.worker_id)
      .String("sub", absl::StrCat("sha256:", c.model_sha256))
      .String("jti", c.token_id)
      .String("kid", c.key_id)
      .String("iat", FormatTokenTime(c.issued_at))
      .String("nbf", FormatTokenTime(c.not_before))
      .String("exp", FormatTokenTime(c.expires_at))
      .String("model_sha256", c.model_sha256)
      .String("model_size", json::Number(c.model_size))
      .String("source_uri", c.source_uri)
      .String("model_name", c.model_name);
  if (!c.model_family.empty()) w.String("model_family", c.model_family);
  return w.String("policy_version", json::Number(c.policy_version))
      .String("log_index", json::Number(c.log_index))
      .String("log_origin", c.log_origin)
      .Finish();
}

ApprovalTokenSigner::ApprovalTokenSigner(std::shared_ptr<const Ed25519PrivateKey> key)
    : key_(std::move(key)), key_id_(TokenKeyId(key_->public_key())) {}

absl::StatusOr<std::string> ApprovalTokenSigner::Sign(ApprovalClaims claims) const {
  claims.key_id = key_id_;
  claims.issued_at = TruncateToSeconds(claims.issued_at);
  claims.not_before = TruncateToSeconds(claims.not_before);
  claims.expires_at = TruncateToSeconds(claims.expires_at);
  if (claims.issuer.empty() || claims.worker_id.empty() || claims.token_id.empty() ||
      claims.source_uri.empty() || claims.model_name.empty() || claims.log_origin.empty()) {
    return absl::InvalidArgumentError("approval claims: a required string claim is empty");
  }
  if (!IsSha256Hex(claims.model_sha256)) {
    return absl::InvalidArgumentError("approval claims: model_sha256 is not 64 lowercase hex");
  }
  if (!IsModelFamily(claims.model_family)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "approval claims: model_family \"", claims.model_family,
        "\" is not a model family (1..64 characters of [a-z0-9._-], e.g. gpt-oss, qwen2, phi3)"));
  }
  if (claims.expires_at <= claims.issued_at || claims.not_before > claims.expires_at) {
    return absl::InvalidArgumentError("approval claims: inconsistent iat/nbf/exp");
  }
  return paseto::SignV4Public(*key_, EncodeApprovalClaims(claims), Footer(key_id_),
                              claims.worker_id);
}

void ApprovalTokenVerifier::AddKey(Ed25519PublicKey key) {
  std::string kid = TokenKeyId(key);
  keys_.insert_or_assign(std::move(kid), std::move(key));
}

absl::StatusOr<ApprovalClaims> ApprovalTokenVerifier::Verify(std::string_view token,
                                                             const ApprovalExpectations& expect,
                                                             absl::Time now) const {
  if (expect.worker_id.empty()) {
    return absl::InvalidArgumentError("expectations: worker_id is required");
  }
  // 1. Choose the key: the footer is not authenticated yet, so it may only
  //    select among pinned keys, never supply one.
  auto raw_footer = paseto::UntrustedFooter(token);
  if (!raw_footer.ok()) return raw_footer.status();
  auto footer = json::Parse(*raw_footer, 2);
  if (!footer.ok() || !footer->is_object()) {
    return absl::InvalidArgumentError("token footer is not a JSON object");
  }
  auto footer_kid = RequireString(*footer, "kid");
  if (!footer_kid.ok()) return footer_kid.status();
  auto key = keys_.find(*footer_kid);
  if (key == keys_.end()) {
    return absl::UnauthenticatedError(absl::StrCat("unknown token key id ", *footer_kid));
  }

  // 2. Signature, with the worker id as implicit assertion.
  auto verified = paseto::VerifyV4Public(key->second, token, expect.worker_id);
  if (!verified.ok()) return verified.status();

  // 3. Claims.
  auto payload = json::Parse(verified->payload, 2);
  if (!payload.ok() || !payload->is_object()) {
    return absl::InvalidArgumentError("token payload is not a JSON object");
  }
  const json::Value& p = *payload;
  ApprovalClaims c;
  auto typ = RequireString(p, "typ");
  if (!typ.ok()) return typ.status();
  if (*typ != kApprovalTokenType) {
    return absl::UnauthenticatedError(absl::StrCat("wrong token type ", *typ));
  }
#define OSSGATE_ASSIGN_OR_RETURN(lhs, expr) \
  do {                                      \
    auto _v = (expr);                       \
    if (!_v.ok()) return _v.status();       \
    lhs = *std::move(_v);                   \
  } while (0)
  OSSGATE_ASSIGN_OR_RETURN(c.issuer, RequireString(p, "iss"));
  OSSGATE_ASSIGN_OR_RETURN(c.worker_id, RequireString(p, "aud"));
  OSSGATE_ASSIGN_OR_RETURN(c.token_id, RequireString(p, "jti"));
  OSSGATE_ASSIGN_OR_RETURN(c.key_id, RequireString(p, "kid"));
  OSSGATE_ASSIGN_OR_RETURN(c.model_sha256, RequireString(p, "model_sha256"));
  OSSGATE_ASSIGN_OR_RETURN(c.model_size, RequireDecimal(p, "model_size"));
  OSSGATE_ASSIGN_OR_RETURN(c.source_uri, RequireString(p, "source_uri"));
  OSSGATE_ASSIGN_OR_RETURN(c.model_name, RequireString(p, "model_name"));
  OSSGATE_ASSIGN_OR_RETURN(c.policy_version, RequireDecimal(p, "policy_version"));
  OSSGATE_ASSIGN_OR_RETURN(c.log_index, RequireDecimal(p, "log_index"));
  OSSGATE_ASSIGN_OR_RETURN(c.log_origin, RequireString(p, "log_origin"));
  OSSGATE_ASSIGN_OR_RETURN(c.issued_at, RequireTime(p, "iat"));
  OSSGATE_ASSIGN_OR_RETURN(c.not_before, RequireTime(p, "nbf"));
  OSSGATE_ASSIGN_OR_RETURN(c.expires_at, RequireTime(p, "exp"));
  std::string sub;
  OSSGATE_ASSIGN_OR_RETURN(sub, RequireString(p, "sub"));
#undef OSSGATE_ASSIGN_OR_RETURN
  // Signed, so not forged; absent only in tokens of services older than
  // families, which approved gpt-oss only.
  if (const json::Value* family = p.Find("model_family"); family == nullptr) {
    c.model_family = std::string(kLegacyModelFamily);
    c.model_family_implied = true;
  } else if (!family->is_string() || !IsModelFamily(family->text())) {
    return absl::InvalidArgumentError(
        "claim \"model_family\" is not a model family (a string of 1..64 characters of [a-z0-9._-])");
  } else {
    c.model_family = family->text();
  }

  if (c.key_id != *footer_kid) return absl::UnauthenticatedError("kid claim differs from footer");
  if (c.worker_id != expect.worker_id) {
    return absl::UnauthenticatedError("token audience is another worker");
  }
  if (!expect.issuer.empty() && c.issuer != expect.issuer) {
    return absl::UnauthenticatedError(absl::StrCat("unexpected issuer ", c.issuer));
  }
  if (!IsSha256Hex(c.model_sha256) || sub != absl::StrCat("sha256:", c.model_sha256)) {
    return absl::InvalidArgumentError("model_sha256/sub claims malformed or inconsistent");
  }

  // 4. Time window, with explicit leeway.
  if (c.expires_at <= c.issued_at || c.not_before > c.expires_at) {
    return absl::InvalidArgumentError("inconsistent iat/nbf/exp");
  }
  if (c.expires_at - c.issued_at > options_.max_lifetime) {
    return absl::UnauthenticatedError("token lifetime exceeds the allowed maximum");
  }
  if (c.issued_at > now + options_.leeway) {
    return absl::FailedPreconditionError("token issued in the future");
  }
  if (now + options_.leeway < c.not_before) {
    return absl::FailedPreconditionError("token not yet valid");
  }
  if (now >= c.expires_at + options_.leeway) {
    return absl::DeadlineExceededError("token expired");
  }

  // 5. The file the worker is about to load.
  if (!expect.model_sha256.empty() && c.model_sha256 != expect.model_sha256) {
    return absl::UnauthenticatedError("token approves a different model hash");
  }
  if (expect.model_size != 0 && c.model_size != expect.model_size) {
    return absl::UnauthenticatedError("token approves a different model size");
  }
  return c;
}

}  // namespace ossgate::token
