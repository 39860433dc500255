// Offline re-verification of a stored audit log (provctl audit verify).
//
// Recomputes every leaf hash from the stored record bytes and the tree from
// scratch, and checks, in log order:
//   - indices are dense from 0 and each record decodes and is canonical;
//   - the derived query columns match the record;
//   - the stored leaf hash matches the record;
//   - every stored checkpoint carries a valid signature by the log key, for
//     the log's origin, and its root equals the recomputed root at its size;
//   - the latest checkpoint (or a checkpoint the auditor saved earlier and
//     passes in) covers the whole log.
// The first failure is reported with the index of the first tampered record
// when it can be pinpointed: a modified record changes its own leaf hash; if
// the attacker also rewrote the stored hashes, the signed checkpoints bound
// the damage to (last good checkpoint, first bad checkpoint].
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_LOG_VERIFIER_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_LOG_VERIFIER_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/store.h"

namespace ossgate::provenance {

struct LogVerifyReport {
  bool ok = false;
  uint64_t records = 0;
  uint64_t checkpoints = 0;
  uint64_t verified_size = 0;  // size of the latest checkpoint verified
  std::string root_hex;
  // On failure: first record known or suspected to be tampered, and why.
  std::optional<uint64_t> first_bad_index;
  // True when first_bad_index is exact, false when it is the start of the
  // range that must contain the tampering.
  bool exact = false;
  std::string problem;
};

// `trusted_checkpoint_note`, if non-empty, is a checkpoint obtained out of
// band (e.g. saved by an auditor); the log must extend it consistently.
// Returns an error status only when the store cannot be read; tampering is
// reported in the report.
absl::StatusOr<LogVerifyReport> VerifyStoredLog(Store& store, const NoteVerifier& verifier,
                                                const std::string& origin,
                                                const std::string& trusted_checkpoint_note = "");

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_LOG_VERIFIER_H_
