// Audit log records and their canonical encoding (the bytes that are hashed
// into the Merkle tree). docs/provenance.md, "Record encoding", is the spec:
//
// A record is one JSON object, UTF-8 (in practice printable ASCII), with
//   - keys in ascending byte order, no whitespace, no duplicates;
//   - values that are strings or unsigned integers in canonical decimal;
//   - fields with an empty string or zero value omitted, except the always
//     present "v", "kind", "time_us", "caller", "verdict", "reason";
//   - every string sanitised on entry (model_uri.h, Sanitize): printable
//     ASCII only, so the JSON escaping is limited to '"' (and '\', which
//     Sanitize never leaves unescaped as a raw byte).
// DecodeRecord accepts exactly the output of EncodeRecord: it re-encodes
// and compares, so a record has a single valid byte representation.
//
// Thread-safety: pure functions.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_AUDIT_RECORD_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_AUDIT_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace ossgate::provenance {

inline constexpr uint64_t kRecordVersion = 1;

enum class RecordKind { kVerifyModel, kRegistryChange };
enum class Verdict { kAccepted, kRejected };

std::string_view RecordKindName(RecordKind k);  // "verify_model", "registry_change"
std::string_view VerdictName(Verdict v);        // "accepted", "rejected"

struct AuditRecord {
  RecordKind kind = RecordKind::kVerifyModel;
  uint64_t time_us = 0;  // microseconds since the Unix epoch (UTC)
  std::string caller;
  Verdict verdict = Verdict::kRejected;
  std::string reason;  // lower-case reason code
  std::string detail;

  // kVerifyModel: the request as received (sanitised).
  std::string req_name;
  std::string req_source_uri;
  std::string req_sha256;
  uint64_t req_size = 0;
  std::string req_worker_id;
  // kVerifyModel, accepted: the issued token.
  std::string token_id;
  uint64_t token_exp_us = 0;
  std::string token_key_id;
  // kVerifyModel: the registry entry that decided.
  std::string matched_source;
  std::string matched_path;

  uint64_t policy_version = 0;

  // kVerifyModel, accepted: the model family the approval is for.
  // kRegistryChange: the family the change gives its entry (add_source,
  // add_file, set_family). Empty in records written before families.
  std::string family;

  // kRegistryChange.
  std::string action;  // add_source, revoke_source, add_file, revoke_file, set_family
  std::string target_uri;
  std::string target_path;
  std::string target_sha256;
  uint64_t target_size = 0;
  std::string description;
  std::string revoke_reason;

  // The model hash and source this record is about (indexed for queries).
  const std::string& SubjectSha256() const {
    return kind == RecordKind::kVerifyModel ? req_sha256 : target_sha256;
  }
  const std::string& SubjectSource() const {
    return kind == RecordKind::kVerifyModel ? req_source_uri : target_uri;
  }
};

std::string EncodeRecord(const AuditRecord& record);
absl::StatusOr<AuditRecord> DecodeRecord(std::string_view bytes);

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_AUDIT_RECORD_H_
