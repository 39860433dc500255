// The trusted-source registry and the verification policy.
//
// The registry is derived state: it is the fold of every applied
// registry-change record of the audit log, in log order (ApplyChange), so it
// is covered by the log's Merkle tree and rebuilt from the log at startup.
// Policy (Evaluate) is a pure function of (registry, request).
//
// Model families: a source or file entry may name the model family (GGUF
// general.architecture, e.g. "gpt-oss", "qwen2", "phi3") its files are. An
// approval names the family of the file entry that decided it, else of that
// entry's source, else gpt-oss: entries written before families existed
// (and entries still added without one) approved gpt-oss models, the only
// family the worker served then (ApprovedFamily). set_family changes give an
// existing entry a family.
//
// Thread-safety: RegistryState is a plain value. The ledger publishes
// immutable snapshots (shared_ptr<const RegistryState>) to readers and
// applies a batch's changes to a private copy. Copies are O(1) and share
// every entry a change does not touch (PersistentMap), so a change costs
// O(log n) whatever the size of the registry.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_REGISTRY_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_REGISTRY_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/status/status.h"
#include "provenance_service/core/model_uri.h"
#include "provenance_service/core/persistent_map.h"

namespace ossgate::provenance {

struct SourceEntry {
  std::string uri;
  std::string description;
  // Family of the source's files; empty = none named (files name their own,
  // or are gpt-oss).
  std::string family;
  bool revoked = false;
  std::string revoke_reason;
  uint64_t added_us = 0;
  std::string added_by;
  uint64_t revoked_us = 0;
  std::string revoked_by;
  uint64_t added_log_index = 0;
};

struct FileKey {
  std::string source_uri;
  std::string path;  // relative to the source; empty = any path
  std::string sha256;
  bool operator<(const FileKey& o) const {
    return std::tie(source_uri, path, sha256) < std::tie(o.source_uri, o.path, o.sha256);
  }
  bool operator==(const FileKey& o) const = default;
};

struct FileEntry {
  FileKey key;
  uint64_t size = 0;
  std::string description;
  // Empty = the source's family (ApprovedFamily).
  std::string family;
  bool revoked = false;
  std::string revoke_reason;
  uint64_t added_us = 0;
  std::string added_by;
  uint64_t revoked_us = 0;
  std::string revoked_by;
  uint64_t added_log_index = 0;
};

struct RegistryState {
  PersistentMap<std::string, SourceEntry> sources;
  PersistentMap<FileKey, FileEntry> files;
  // Number of applied changes.
  uint64_t policy_version = 0;
};

// ---- verification ----

struct VerifyRequest {
  std::string name;
  std::string source_uri;
  std::string sha256;
  uint64_t size = 0;
  std::string worker_id;
};

enum class VerifyReason {
  kVerified,
  kUntrustedSource,
  kUnknownHash,
  kHashMismatch,
  kSizeMismatch,
  kRevoked,
  kMalformedRequest,
  kPermissionDenied,
};

// "verified", "untrusted_source", ... (the audit record reason codes).
std::string_view VerifyReasonCode(VerifyReason r);
std::optional<VerifyReason> VerifyReasonFromCode(std::string_view code);

// INVALID_ARGUMENT naming the first bad field ("sha256: ...").
absl::Status ValidateVerifyRequest(const VerifyRequest& request);

struct Decision {
  VerifyReason reason = VerifyReason::kUntrustedSource;
  std::string detail;
  std::optional<SourceEntry> source;
  std::optional<FileEntry> file;
  // Path of the file relative to the matched source.
  std::string relative_path;
  // kVerified: the model family the approval is for (ApprovedFamily).
  std::string family;
};

// `request` must have passed ValidateVerifyRequest. Rules (first match wins):
//  1. upload:// and https:// URIs, and URIs no trusted source covers:
//     kUntrustedSource.
//  2. Any covering source revoked: kRevoked.
//  3. Entries of covering sources with this hash and a matching path
//     (exact relative path, or the entry's empty "any path"):
//       any revoked -> kRevoked; any with equal size -> kVerified;
//       otherwise -> kSizeMismatch.
//  4. An active entry for this exact path with another hash: kHashMismatch.
//  5. Otherwise kUnknownHash.
Decision Evaluate(const RegistryState& state, const VerifyRequest& request);

// The model family an approval of `file` names: the entry's family, else its
// source's, else token::kLegacyModelFamily ("gpt-oss").
std::string ApprovedFamily(const RegistryState& state, const FileEntry& file);

// INVALID_ARGUMENT "<field>: ..." unless `family` is a model family
// (token::IsModelFamily); empty is allowed unless `required`.
absl::Status ValidateFamily(std::string_view field, std::string_view family, bool required);
// ---- changes ----

// kSetFamily names a source (empty sha256 and path) or a file entry (uri,
// path, sha256) and the family it gets.
enum class ChangeAction { kAddSource, kRevokeSource, kAddFile, kRevokeFile, kSetFamily };
std::string_view ChangeActionName(ChangeAction a);  // "add_source", ..., "set_family"
std::optional<ChangeAction> ChangeActionFromName(std::string_view name);

struct RegistryChange {
  ChangeAction action = ChangeAction::kAddSource;
  std::string uri;  // source URI (sources and files)
  std::string path;
  std::string sha256;
  uint64_t size = 0;
  std::string description;
  std::string reason;  // revocations
  std::string family;  // add_source, add_file (optional), set_family (required)
};

// INVALID_ARGUMENT naming the bad field.
absl::Status ValidateRegistryChange(const RegistryChange& change);

struct ChangeResult {
  // "applied", "already_exists", "not_found", "revoked", "already_revoked".
  std::string reason;
  // OK iff applied; ALREADY_EXISTS / NOT_FOUND / FAILED_PRECONDITION otherwise.
  absl::Status status;
  std::optional<SourceEntry> source;
  std::optional<FileEntry> file;
};

// Applies a validated change to *state if the registry allows it (see
// RegistryService in the proto for the rules) and bumps policy_version.
ChangeResult ApplyChange(RegistryState* state, const RegistryChange& change,
                         std::string_view caller, uint64_t time_us, uint64_t log_index);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_REGISTRY_H_
