#include "provenance_service/token/paseto.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/encoding.h"

namespace ossgate::token::paseto {
namespace {

void AppendLe64(std::string* out, uint64_t n) {
  for (int i = 0; i < 8; ++i) {
    uint8_t b = static_cast<uint8_t>(n & 0xff);
    if (i == 7) b &= 0x7f;  // clear the MSB for interoperability
    out->push_back(static_cast<char>(b));
    n >>= 8;
  }
}

struct Parts {
  std::string_view body;    // base64url(m || sig)
  std::string_view footer;  // base64url(f), may be empty
  bool has_footer = false;
};

absl::StatusOr<Parts> Split(std::string_view token) {
  if (token.size() > kMaxTokenLength) return absl::InvalidArgumentError("token too long");
  if (token.substr(0, kV4PublicHeader.size()) != kV4PublicHeader) {
    return absl::InvalidArgumentError("not a v4.public token");
  }
  std::string_view rest = token.substr(kV4PublicHeader.size());
  Parts parts;
  size_t dot = rest.find('.');
  if (dot == std::string_view::npos) {
    parts.body = rest;
  } else {
    parts.body = rest.substr(0, dot);
    parts.footer = rest.substr(dot + 1);
    parts.has_footer = true;
    if (parts.footer.find('.') != std::string_view::npos) {
      return absl::InvalidArgumentError("too many token segments");
    }
    // An empty footer must be encoded by omitting the segment.
    if (parts.footer.empty()) return absl::InvalidArgumentError("empty footer segment");
  }
  return parts;
}

}  // namespace

std::string Pae(const std::vector<std::string_view>& pieces) {
  std::string out;
  AppendLe64(&out, pieces.size());
  for (std::string_view p : pieces) {
    AppendLe64(&out, p.size());
    out.append(p);
  }
  return out;
}

std::string SignV4Public(const Ed25519PrivateKey& key, std::string_view payload,
                         std::string_view footer, std::string_view implicit_assertion) {
  std::string m2 = Pae({kV4PublicHeader, payload, footer, implicit_assertion});
  std::string sig = key.Sign(m2);
  std::string body(payload);
  body += sig;
  std::string token = std::string(kV4PublicHeader) + Base64UrlEncode(body);
  if (!footer.empty()) {
    token.push_back('.');
    token += Base64UrlEncode(footer);
  }
  return token;
}

absl::StatusOr<VerifiedToken> VerifyV4Public(const Ed25519PublicKey& key, std::string_view token,
                                             std::string_view implicit_assertion) {
  auto parts = Split(token);
  if (!parts.ok()) return parts.status();
  auto body = Base64UrlDecode(parts->body);
  if (!body) return absl::InvalidArgumentError("token body is not base64url");
  if (body->size() < kEd25519SignatureSize) return absl::InvalidArgumentError("token too short");
  std::string footer;
  if (parts->has_footer) {
    auto f = Base64UrlDecode(parts->footer);
    if (!f) return absl::InvalidArgumentError("token footer is not base64url");
    footer = *std::move(f);
  }
  std::string_view m(body->data(), body->size() - kEd25519SignatureSize);
  std::string_view sig(body->data() + m.size(), kEd25519SignatureSize);
  std::string m2 = Pae({kV4PublicHeader, m, footer, implicit_assertion});
  if (!key.Verify(m2, sig)) return absl::UnauthenticatedError("invalid token signature");
  return VerifiedToken{std::string(m), std::move(footer)};
}

absl::StatusOr<std::string> UntrustedFooter(std::string_view token) {
  auto parts = Split(token);
  if (!parts.ok()) return parts.status();
  if (!parts->has_footer) return std::string();
  auto f = Base64UrlDecode(parts->footer);
  if (!f) return absl::InvalidArgumentError("token footer is not base64url");
  return *std::move(f);
}

}  // namespace ossgate::token::paseto
