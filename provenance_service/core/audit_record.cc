#include "provenance_service/core/audit_record.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/token/json.h"

namespace ossgate::provenance {
namespace {

namespace json = token::json;

// Field table: one entry per key, shared by the encoder and the decoder so
// the two cannot drift apart.
struct Field {
  const char* key;
  std::string AuditRecord::*str = nullptr;
  uint64_t AuditRecord::*num = nullptr;
  bool always = false;
};

const std::vector<Field>& Fields() {
  static const std::vector<Field>* fields = [] {
    auto* f = new std::vector<Field>{
        {"action", &AuditRecord::action},
        {"caller", &AuditRecord::caller, nullptr, true},
        {"description", &AuditRecord::description},
        {"detail", &AuditRecord::detail},
        {"family", &AuditRecord::family},
        {"matched_path", &AuditRecord::matched_path},
        {"matched_source", &AuditRecord::matched_source},
        {"policy_version", nullptr, &AuditRecord::policy_version},
        {"reason", &AuditRecord::reason, nullptr, true},
        {"req_name", &AuditRecord::req_name},
        {"req_sha256", &AuditRecord::req_sha256},
        {"req_size", nullptr, &AuditRecord::req_size},
        {"req_source_uri", &AuditRecord::req_source_uri},
        {"req_worker_id", &AuditRecord::req_worker_id},
        {"revoke_reason", &AuditRecord::revoke_reason},
        {"target_path", &AuditRecord::target_path},
        {"target_sha256", &AuditRecord::target_sha256},
        {"target_size", nullptr, &AuditRecord::target_size},
        {"target_uri", &AuditRecord::target_uri},
        {"time_us", nullptr, &AuditRecord::time_us, true},
        {"token_exp_us", nullptr, &AuditRecord::token_exp_us},
        {"token_id", &AuditRecord::token_id},
        {"token_key_id", &AuditRecord::token_key_id},
    };
    return f;
  }();
  return *fields;
}

}  // namespace

std::string_view RecordKindName(RecordKind k) {
  return k == RecordKind::kVerifyModel ? "verify_model" : "registry_change";
}

std::string_view VerdictName(Verdict v) { return v == Verdict::kAccepted ? "accepted" : "rejected"; }

std::string EncodeRecord(const AuditRecord& r) {
  std::vector<std::pair<std::string, std::string>> kv;  // key, JSON value
  for (const Field& f : Fields()) {
    if (f.str != nullptr) {
      const std::string& v = r.*f.str;
      if (v.empty() && !f.always) continue;
      kv.emplace_back(f.key, json::Quote(v));
    } else {
      uint64_t v = r.*f.num;
      if (v == 0 && !f.always) continue;
      kv.emplace_back(f.key, json::Number(v));
    }
  }
  kv.emplace_back("kind", json::Quote(RecordKindName(r.kind)));
  kv.emplace_back("v", json::Number(kRecordVersion));
  kv.emplace_back("verdict", json::Quote(VerdictName(r.verdict)));
  std::sort(kv.begin(), kv.end());
  std::string out = "{";
  for (size_t i = 0; i < kv.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += json::Quote(kv[i].first);
    out.push_back(':');
    out += kv[i].second;
  }
  out.push_back('}');
  return out;
}

absl::StatusOr<AuditRecord> DecodeRecord(std::string_view bytes) {
  auto doc = json::Parse(bytes, 1);
  if (!doc.ok()) return doc.status();
  if (!doc->is_object()) return absl::InvalidArgumentError("record is not a JSON object");
  AuditRecord r;
  const json::Value* v = doc->Find("v");
  if (v == nullptr || v->AsUint64() != kRecordVersion) {
    return absl::InvalidArgumentError("record version is not 1");
  }
  const json::Value* kind = doc->Find("kind");
  if (kind == nullptr || !kind->is_string()) return absl::InvalidArgumentError("record kind missing");
  if (kind->text() == "verify_model") r.kind = RecordKind::kVerifyModel;
  else if (kind->text() == "registry_change") r.kind = RecordKind::kRegistryChange;
  else return absl::InvalidArgumentError("unknown record kind");
  const json::Value* verdict = doc->Find("verdict");
  if (verdict == nullptr || !verdict->is_string()) return absl::InvalidArgumentError("record verdict missing");
  if (verdict->text() == "accepted") r.verdict = Verdict::kAccepted;
  else if (verdict->text() == "rejected") r.verdict = Verdict::kRejected;
  else return absl::InvalidArgumentError("unknown record verdict");
  for (const Field& f : Fields()) {
    const json::Value* fv = doc->Find(f.key);
    if (fv == nullptr) continue;
    if (f.str != nullptr) {
      if (!fv->is_string()) return absl::InvalidArgumentError(absl::StrCat("record field ", f.key, " not a string"));
      r.*f.str = fv->text();
    } else {
      auto n = fv->AsUint64();
      if (!n) return absl::InvalidArgumentError(absl::StrCat("record field ", f.key, " not a uint"));
      r.*f.num = *n;
    }
  }
  // Canonical form check: catches unknown keys, reordering, whitespace,
  // escapes spelled differently and explicitly encoded empty values.
  if (EncodeRecord(r) != bytes) return absl::InvalidArgumentError("record is not in canonical form");
  return r;
}

}  // namespace ossgate::provenance
