// C2SP signed notes (c2sp.org/signed-note) with Ed25519 signatures, and the
// tlog checkpoint body they carry (c2sp.org/tlog-checkpoint):
//
//   <origin>\n<tree size, decimal>\n<base64 root hash>\n
//   \n
//   — <key name> <base64(4-byte key id || 64-byte signature)>\n
//
// key id = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4],
// read big-endian. Verifier keys are written "<name>+<8 hex key id>+
// <base64(0x01 || public key)>" (the format used by Go's x/mod/sumdb/note).
//
// Thread-safety: NoteSigner and NoteVerifier are immutable; share freely.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_CHECKPOINT_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_CHECKPOINT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/token/ed25519.h"

namespace ossgate::provenance {

// Key names must be non-empty, without spaces or '+'.
absl::Status ValidateNoteKeyName(std::string_view name);
uint32_t NoteKeyId(std::string_view name, const token::Ed25519PublicKey& key);

class NoteSigner {
 public:
  // `name` must pass ValidateNoteKeyName.
  static absl::StatusOr<NoteSigner> Create(std::string name,
                                           std::shared_ptr<const token::Ed25519PrivateKey> key);
  // Returns the signed note for `text` (which must end in '\n').
  std::string Sign(std::string_view text) const;
  std::string VerifierKey() const;
  const std::string& name() const { return name_; }

 private:
  NoteSigner(std::string name, std::shared_ptr<const token::Ed25519PrivateKey> key, uint32_t id)
      : name_(std::move(name)), key_(std::move(key)), key_id_(id) {}
  std::string name_;
  std::shared_ptr<const token::Ed25519PrivateKey> key_;
  uint32_t key_id_;
};

class NoteVerifier {
 public:
  static absl::StatusOr<NoteVerifier> FromVerifierKey(std::string_view vkey);
  static absl::StatusOr<NoteVerifier> Create(std::string name, token::Ed25519PublicKey key);

  // Returns the note text if a signature by this key verifies. Signatures by
  // other keys are ignored; UNAUTHENTICATED if none is by this key or ours
  // fails; INVALID_ARGUMENT for malformed notes.
  absl::StatusOr<std::string> Open(std::string_view note) const;
  const std::string& name() const { return name_; }
  uint32_t key_id() const { return key_id_; }

 private:
  NoteVerifier(std::string name, std::shared_ptr<token::Ed25519PublicKey> key, uint32_t id)
      : name_(std::move(name)), key_(std::move(key)), key_id_(id) {}
  std::string name_;
  std::shared_ptr<token::Ed25519PublicKey> key_;
  uint32_t key_id_;
};

struct CheckpointBody {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
};

std::string FormatCheckpoint(const CheckpointBody& body);
// Parses the checkpoint text (extension lines are rejected: we never emit them).
absl::StatusOr<CheckpointBody> ParseCheckpoint(std::string_view text);
// Open + parse + origin check.
absl::StatusOr<CheckpointBody> OpenCheckpoint(const NoteVerifier& verifier, std::string_view note,
                                              std::string_view expected_origin);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_CHECKPOINT_H_
