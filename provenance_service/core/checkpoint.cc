#include "provenance_service/core/checkpoint.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

constexpr std::string_view kEmDashSpace = "\xE2\x80\x94 ";
constexpr unsigned char kEd25519Type = 0x01;
constexpr int kMaxSignatures = 16;
constexpr size_t kMaxNoteSize = 64 * 1024;

std::string KeyIdBytes(uint32_t id) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((id >> (24 - 8 * i)) & 0xff);
  return out;
}

uint32_t ReadBe32(std::string_view b) {
  return (uint32_t{static_cast<uint8_t>(b[0])} << 24) | (uint32_t{static_cast<uint8_t>(b[1])} << 16) |
         (uint32_t{static_cast<uint8_t>(b[2])} << 8) | uint32_t{static_cast<uint8_t>(b[3])};
}

}  // namespace

absl::Status ValidateNoteKeyName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("note key name is empty");
  for (char c : name) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == '+' || c == 0x7f) {
      return absl::InvalidArgumentError("note key name must not contain spaces, controls or '+'");
    }
  }
  return absl::OkStatus();
}

uint32_t NoteKeyId(std::string_view name, const token::Ed25519PublicKey& key) {
  std::string buf(name);
  buf.push_back('\n');
  buf.push_back(static_cast<char>(kEd25519Type));
  buf += key.raw();
  return ReadBe32(token::Sha256(buf));
}

absl::StatusOr<NoteSigner> NoteSigner::Create(std::string name,
                                              std::shared_ptr<const token::Ed25519PrivateKey> key) {
  if (auto s = ValidateNoteKeyName(name); !s.ok()) return s;
  uint32_t id = NoteKeyId(name, key->public_key());
  return NoteSigner(std::move(name), std::move(key), id);
}

std::string NoteSigner::Sign(std::string_view text) const {
  std::string sig = key_->Sign(text);
  std::string note(text);
  note.push_back('\n');
  note += kEmDashSpace;
  note += name_;
  note.push_back(' ');
  note += token::Base64Encode(KeyIdBytes(key_id_) + sig);
  note.push_back('\n');
  return note;
}

std::string NoteSigner::VerifierKey() const {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", key_id_);
  std::string typed(1, static_cast<char>(kEd25519Type));
  typed += key_->public_key().raw();
  return absl::StrCat(name_, "+", hex, "+", token::Base64Encode(typed));
}

absl::StatusOr<NoteVerifier> NoteVerifier::Create(std::string name, token::Ed25519PublicKey key) {
  if (auto s = ValidateNoteKeyName(name); !s.ok()) return s;
  uint32_t id = NoteKeyId(name, key);
  return NoteVerifier(std::move(name), std::make_shared<token::Ed25519PublicKey>(std::move(key)), id);
}

absl::StatusOr<NoteVerifier> NoteVerifier::FromVerifierKey(std::string_view vkey) {
  size_t p1 = vkey.find('+');
  size_t p2 = p1 == std::string_view::npos ? p1 : vkey.find('+', p1 + 1);
  if (p2 == std::string_view::npos) {  // the base64 part may itself contain '+'
    return absl::InvalidArgumentError("verifier key must be <name>+<hex id>+<base64 key>");
  }
  std::string name(vkey.substr(0, p1));
  std::string_view hex = vkey.substr(p1 + 1, p2 - p1 - 1);
  auto typed = token::Base64Decode(vkey.substr(p2 + 1));
  if (!typed || typed->size() != 33 || static_cast<uint8_t>((*typed)[0]) != kEd25519Type) {
    return absl::InvalidArgumentError("verifier key: not an Ed25519 (type 0x01) key");
  }
  auto key = token::Ed25519PublicKey::FromRaw(typed->substr(1));
  if (!key.ok()) return key.status();
  auto verifier = Create(std::move(name), *std::move(key));
  if (!verifier.ok()) return verifier.status();
  char expect[9];
  std::snprintf(expect, sizeof expect, "%08x", verifier->key_id());
  if (hex != expect) return absl::InvalidArgumentError("verifier key: key id does not match key");
  return verifier;
}

absl::StatusOr<std::string> NoteVerifier::Open(std::string_view note) const {
  if (note.size() > kMaxNoteSize) return absl::InvalidArgumentError("note too large");
  for (char c : note) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\n') {
      return absl::InvalidArgumentError("note contains control characters");
    }
  }
  if (note.empty() || note.back() != '\n') return absl::InvalidArgumentError("note must end in newline");
  size_t split = note.rfind("\n\n");
  if (split == std::string_view::npos) return absl::InvalidArgumentError("note has no signature block");
  std::string_view text = note.substr(0, split + 1);
  std::string_view sigs = note.substr(split + 2);
  bool verified = false;
  int count = 0;
  while (!sigs.empty()) {
    if (++count > kMaxSignatures) return absl::InvalidArgumentError("too many note signatures");
    size_t nl = sigs.find('\n');
    std::string_view line = sigs.substr(0, nl);
    sigs.remove_prefix(nl + 1);
    if (line.substr(0, kEmDashSpace.size()) != kEmDashSpace) {
      return absl::InvalidArgumentError("malformed note signature line");
    }
    line.remove_prefix(kEmDashSpace.size());
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return absl::InvalidArgumentError("malformed note signature line");
    std::string_view name = line.substr(0, sp);
    auto blob = token::Base64Decode(line.substr(sp + 1));
    if (!blob || blob->size() < 5) return absl::InvalidArgumentError("malformed note signature");
    if (name != name_ || ReadBe32(*blob) != key_id_) continue;  // unknown key: ignore
    if (!key_->Verify(text, std::string_view(*blob).substr(4))) {
      return absl::UnauthenticatedError("note signature by the trusted key does not verify");
    }
    verified = true;
  }
  if (!verified) return absl::UnauthenticatedError("note is not signed by the trusted key");
  return std::string(text);
}

std::string FormatCheckpoint(const CheckpointBody& body) {
  return absl::StrCat(body.origin, "\n", body.size, "\n", token::Base64Encode(HashBytes(body.root)), "\n");
}

absl::StatusOr<CheckpointBody> ParseCheckpoint(std::string_view text) {
  CheckpointBody out;
  std::string_view rest = text;
  auto next_line = [&rest](std::string_view* line) {
    size_t nl = rest.find('\n');
    if (nl == std::string_view::npos) return false;
    *line = rest.substr(0, nl);
    rest.remove_prefix(nl + 1);
    return true;
  };
  std::string_view origin, size, root;
  if (!next_line(&origin) || !next_line(&size) || !next_line(&root) || !rest.empty()) {
    return absl::InvalidArgumentError("checkpoint must have exactly origin, size and root lines");
  }
  if (origin.empty()) return absl::InvalidArgumentError("checkpoint origin is empty");
  if (size.empty() || size.size() > 20 || (size.size() > 1 && size[0] == '0')) {
    return absl::InvalidArgumentError("checkpoint size is not a canonical decimal");
  }
  uint64_t n = 0;
  for (char c : size) {
    if (c < '0' || c > '9') return absl::InvalidArgumentError("checkpoint size is not decimal");
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (n > (UINT64_MAX - d) / 10) return absl::InvalidArgumentError("checkpoint size overflows");
    n = n * 10 + d;
  }
  auto raw = token::Base64Decode(root);
  if (!raw) return absl::InvalidArgumentError("checkpoint root is not base64");
  auto h = HashFromBytes(*raw);
  if (!h.ok()) return h.status();
  out.origin = std::string(origin);
  out.size = n;
  out.root = *h;
  return out;
}

absl::StatusOr<CheckpointBody> OpenCheckpoint(const NoteVerifier& verifier, std::string_view note,
                                              std::string_view expected_origin) {
  auto text = verifier.Open(note);
  if (!text.ok()) return text.status();
  auto body = ParseCheckpoint(*text);
  if (!body.ok()) return body.status();
  if (body->origin != expected_origin) {
    return absl::UnauthenticatedError(
        absl::StrCat("checkpoint origin \"", body->origin, "\" is not \"", std::string(expected_origin), "\""));
  }
  return body;
}

}  // namespace ossgate::provenance
