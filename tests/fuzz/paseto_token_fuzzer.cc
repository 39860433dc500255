// Fuzz target: approval tokens (PASETO v4.public) and their JSON claims, as
// the inference worker verifies them. Random bytes almost never carry a valid
// signature, so besides raw tokens the target signs fuzzed payloads and
// footers with a fixed key, which takes the input through the signature
// check into the claims parser. The first byte selects:
//   0  raw token                     -> ApprovalTokenVerifier::Verify, VerifyV4Public, UntrustedFooter
//   1  payload (claims JSON)         -> signed with the fuzz key and verified
//   2  payload \0 footer             -> the same with a fuzzed footer
//   3  JSON text                     -> json::Parse (strings re-quote to themselves)
//   4  RFC 3339 time                 -> ParseTokenTime (a parsed time formats back)
// Properties: errors carry the documented codes; an accepted token matches
// the expectations and its time window, names a model family (gpt-oss when it
// has no family claim), and changing any byte of it makes verification fail.
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "provenance_service/token/approval_token.h"
#include "provenance_service/token/json.h"
#include "provenance_service/token/paseto.h"
#include "provenance_service/token/sha256.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_keys.h"

namespace {

using namespace ossgate;

bool DocumentedVerifyError(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kDeadlineExceeded:
    case absl::StatusCode::kFailedPrecondition:
      return true;
    default:
      return false;
  }
}

const token::ApprovalTokenVerifier& Verifier() {
  static const token::ApprovalTokenVerifier* v = [] {
    auto* verifier = new token::ApprovalTokenVerifier();
    verifier->AddKey(*token::Ed25519PublicKey::FromRaw(fuzz::FuzzTokenKey().public_key().raw()));
    return verifier;
  }();
  return *v;
}

token::ApprovalExpectations Expectations() {
  token::ApprovalExpectations e;
  e.worker_id = fuzz::kFuzzWorkerId;
  e.issuer = fuzz::kFuzzIssuer;
  return e;
}

void CheckToken(std::string_view token) {
  const absl::Time now = fuzz::FuzzNow();
  const auto claims = Verifier().Verify(token, Expectations(), now);
  if (!claims.ok()) {
    FUZZ_CHECK(DocumentedVerifyError(claims.status()));
  } else {
    FUZZ_CHECK(claims->worker_id == fuzz::kFuzzWorkerId && claims->issuer == fuzz::kFuzzIssuer);
    FUZZ_CHECK(claims->key_id == fuzz::FuzzTokenKeyId());
    FUZZ_CHECK(token::IsSha256Hex(claims->model_sha256));
    // A family of the documented form; a token without the claim reads as gpt-oss.
    FUZZ_CHECK(token::IsModelFamily(claims->model_family));
    FUZZ_CHECK(!claims->model_family_implied || claims->model_family == token::kLegacyModelFamily);
    FUZZ_CHECK(claims->issued_at < claims->expires_at && claims->not_before <= claims->expires_at);
    FUZZ_CHECK(now < claims->expires_at + absl::Seconds(30));
    // Any other byte string must fail: flip each byte in turn (a bounded
    // number of positions, spread over the token).
    std::string tampered(token);
    const size_t step = tampered.size() / 64 + 1;
    for (size_t i = 0; i < tampered.size(); i += step) {
      for (char delta : {char(1), char(0x20)}) {
        tampered[i] = static_cast<char>(tampered[i] ^ delta);
        FUZZ_CHECK(!Verifier().Verify(tampered, Expectations(), now).ok());
        tampered[i] = static_cast<char>(tampered[i] ^ delta);
      }
    }
    // Another worker cannot use it.
    token::ApprovalExpectations other = Expectations();
    other.worker_id = "someone-else";
    FUZZ_CHECK(!Verifier().Verify(token, other, now).ok());
  }
  const auto verified = token::paseto::VerifyV4Public(fuzz::FuzzTokenKey().public_key(), token, fuzz::kFuzzWorkerId);
  if (!verified.ok()) {
    FUZZ_CHECK(verified.status().code() == absl::StatusCode::kInvalidArgument ||
               verified.status().code() == absl::StatusCode::kUnauthenticated);
  }
  const auto footer = token::paseto::UntrustedFooter(token);
  if (!footer.ok()) FUZZ_CHECK(footer.status().code() == absl::StatusCode::kInvalidArgument);
  if (verified.ok()) FUZZ_CHECK(footer.ok() && *footer == verified->footer);
}

void CheckSigned(std::string_view payload, std::string_view footer) {
  const std::string token =
      token::paseto::SignV4Public(fuzz::FuzzTokenKey(), payload, footer, fuzz::kFuzzWorkerId);
  const auto verified = token::paseto::VerifyV4Public(fuzz::FuzzTokenKey().public_key(), token, fuzz::kFuzzWorkerId);
  FUZZ_CHECK(verified.ok() && verified->payload == payload && verified->footer == footer);
  CheckToken(token);
}

void CheckJson(std::string_view text) {
  const auto value = token::json::Parse(text);
  if (!value.ok()) {
    FUZZ_CHECK(value.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  if (value->is_string()) {
    const auto again = token::json::Parse(token::json::Quote(value->text()));
    FUZZ_CHECK(again.ok() && again->is_string() && again->text() == value->text());
  }
  if (value->is_number()) (void)value->AsUint64();
  if (value->is_object()) {
    for (const auto& [key, member] : value->members()) FUZZ_CHECK(value->Find(key) == &member);
  }
}

void CheckTime(std::string_view text) {
  const auto t = token::ParseTokenTime(text);
  if (!t.ok()) {
    FUZZ_CHECK(t.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  const absl::Time seconds = absl::FromUnixSeconds(absl::ToUnixSeconds(*t));
  if (seconds < absl::FromCivil(absl::CivilSecond(1000, 1, 1), absl::UTCTimeZone()) ||
      seconds >= absl::FromCivil(absl::CivilSecond(10000, 1, 1), absl::UTCTimeZone())) {
    return;  // outside the four-digit years FormatTokenTime writes
  }
  const auto back = token::ParseTokenTime(token::FormatTokenTime(seconds));
  FUZZ_CHECK(back.ok() && *back == seconds);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)Verifier();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0:
      CheckToken(rest);
      break;
    case 1:
      CheckSigned(rest, "{\"kid\":\"" + fuzz::FuzzTokenKeyId() + "\"}");
      break;
    case 2: {
      const size_t nul = rest.find('\0');
      if (nul == std::string_view::npos) {
        CheckSigned(rest, "");
      } else {
        CheckSigned(rest.substr(0, nul), rest.substr(nul + 1));
      }
      break;
    }
    case 3:
      CheckJson(rest);
      break;
    case 4:
      CheckTime(rest);
      break;
  }
  return 0;
}
