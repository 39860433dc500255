#include "provenance_service/core/log_verifier.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "provenance_service/core/audit_record.h"

namespace ossgate::provenance {

absl::StatusOr<LogVerifyReport> VerifyStoredLog(Store& store, const NoteVerifier& verifier,
                                                const std::string& origin,
                                                const std::string& trusted_checkpoint_note) {
  LogVerifyReport report;

  // Signed roots by size: every stored checkpoint, plus the trusted one.
  std::map<uint64_t, Hash> signed_roots;
  std::optional<std::string> checkpoint_problem;
  auto scan = store.ScanCheckpoints([&](const StoredCheckpoint& cp) {
    ++report.checkpoints;
    auto body = OpenCheckpoint(verifier, cp.note, origin);
    if (!body.ok()) {
      checkpoint_problem = absl::StrCat("checkpoint at size ", cp.tree_size, ": ", body.status().message());
      return false;
    }
    if (body->size != cp.tree_size || body->root != cp.root) {
      checkpoint_problem = absl::StrCat("checkpoint row at size ", cp.tree_size, " disagrees with its signed note");
      return false;
    }
    signed_roots[cp.tree_size] = body->root;
    return true;
  });
  if (!scan.ok()) return scan;
  if (checkpoint_problem) {
    report.problem = *checkpoint_problem;
    return report;
  }
  std::optional<uint64_t> trusted_size;
  if (!trusted_checkpoint_note.empty()) {
    auto body = OpenCheckpoint(verifier, trusted_checkpoint_note, origin);
    if (!body.ok()) {
      report.problem = absl::StrCat("trusted checkpoint: ", body.status().message());
      return report;
    }
    auto it = signed_roots.find(body->size);
    if (it != signed_roots.end() && it->second != body->root) {
      report.problem = absl::StrCat("stored checkpoint at size ", body->size,
                                    " differs from the trusted checkpoint (split view or rewrite)");
      return report;
    }
    signed_roots[body->size] = body->root;
    trusted_size = body->size;
  }
  if (signed_roots.empty()) {
    auto count = store.RecordCount();
    if (!count.ok()) return count.status();
    report.ok = *count == 0;
    if (!report.ok) report.problem = "log has records but no signed checkpoint";
    return report;
  }

  CompactRange range;
  uint64_t expected = 0;
  uint64_t last_good_size = 0;  // largest signed size verified so far
  std::optional<uint64_t> first_leaf_mismatch;
  auto next_signed = signed_roots.begin();
  bool stop = false;
  auto fail = [&](uint64_t index, bool exact, std::string problem) {
    report.first_bad_index = index;
    report.exact = exact;
    report.problem = std::move(problem);
    stop = true;
  };

  auto check_signed = [&]() {
    while (!stop && next_signed != signed_roots.end() && next_signed->first == range.size()) {
      if (range.Root() != next_signed->second) {
        if (first_leaf_mismatch) {
          fail(*first_leaf_mismatch, true,
               absl::StrCat("record ", *first_leaf_mismatch, " was modified (its hash no longer matches; the signed checkpoint at size ",
                            range.size(), " does not verify)"));
        } else {
          fail(last_good_size, false,
               absl::StrCat("the tree root at size ", range.size(), " does not match its signed checkpoint: a record in [",
                            last_good_size, ", ", range.size(), ") was modified or replaced"));
        }
        return;
      }
      last_good_size = range.size();
      report.verified_size = range.size();
      ++next_signed;
    }
  };
  check_signed();  // a checkpoint at size 0 (not produced, but harmless)

  auto status = store.ScanRecords(0, [&](const StoredRecord& row) {
    if (row.index != expected) {
      fail(expected, true, absl::StrCat("record ", expected, " is missing (next stored index is ", row.index, ")"));
      return false;
    }
    ++expected;
    auto record = DecodeRecord(row.record);
    if (!record.ok()) {
      fail(row.index, true, absl::StrCat("record ", row.index, " is corrupt: ", record.status().message()));
      return false;
    }
    if (row.time_us != record->time_us || row.kind != RecordKindName(record->kind) ||
        row.verdict != VerdictName(record->verdict) || row.caller != record->caller ||
        row.sha256 != record->SubjectSha256() || row.source != record->SubjectSource() ||
        row.family != record->family) {
      fail(row.index, true, absl::StrCat("record ", row.index, ": query columns disagree with the record"));
      return false;
    }
    Hash leaf = LeafHash(row.record);
    if (leaf != row.leaf_hash && !first_leaf_mismatch) first_leaf_mismatch = row.index;
    range.Append(leaf, nullptr);
    check_signed();
    return !stop;
  });
  if (!status.ok()) return status;
  report.records = expected;
  if (stop) return report;

  if (next_signed != signed_roots.end()) {
    fail(expected, true,
         absl::StrCat("log was truncated: a signed checkpoint covers ", next_signed->first, " records but only ",
                      expected, " are stored"));
    return report;
  }
  if (first_leaf_mismatch) {
    fail(*first_leaf_mismatch, true,
         absl::StrCat("record ", *first_leaf_mismatch, ": stored leaf hash does not match the record"));
    return report;
  }
  uint64_t covered = signed_roots.rbegin()->first;
  if (expected != covered) {
    fail(covered, true,
         absl::StrCat("records from index ", covered, " on are not covered by any signed checkpoint"));
    return report;
  }
  (void)trusted_size;
  report.root_hex = HashHex(range.Root());
  report.ok = true;
  return report;
}

}  // namespace ossgate::provenance
