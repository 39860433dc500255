// The ledger: the single writer of the audit log. It sequences every
// decision and registry change, evaluates policy against the registry state
// at that point of the log, appends the record, extends the Merkle tree,
// signs a checkpoint and commits, and only then reports back.
//
// Group commit: submissions queue up while the writer thread is busy; the
// writer takes everything queued (up to max_batch) and writes it in one
// SQLite transaction with one fsync and one checkpoint signature. Under load
// the batch grows with the number of concurrent callers, so durability costs
// one fsync per batch, not per request.
//
// Invariants:
//  - record index == leaf index; indices are dense from 0;
//  - every committed transaction ends with a checkpoint for the new size, so
//    the latest checkpoint always covers every durable record;
//  - callbacks run after the commit that made their record durable (or
//    with an error after rollback), exactly once, on one of the ledger's
//    completion threads (or, once the ledger is shutting down, on the
//    submitting thread with UNAVAILABLE). They must not block; they may
//    call the ledger's read methods.
//
// Thread-safety: all public methods are thread-safe.
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_LEDGER_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_LEDGER_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "provenance_service/core/audit_record.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/clock.h"
#include "provenance_service/core/merkle.h"
#include "provenance_service/core/registry.h"
#include "provenance_service/core/store.h"

namespace ossgate::provenance {

struct LedgerOptions {
  std::string db_path;
  // Checkpoint origin line and note key name, e.g. "ossgate.local/provenance".
  std::string log_origin = "ossgate.local/provenance";
  // Apply DefaultRegistryChanges() when the log is created.
  bool seed_default_registry = true;
  // Most records per transaction.
  size_t max_batch = 1024;
  // SQLite connections for concurrent reads (queries, proofs).
  int reader_connections = 4;
  // Threads that run completion callbacks (token signing and replies), so
  // the writer thread only sequences, writes and fsyncs.
  int completion_threads = 2;
};

struct VerifySubmission {
  std::string caller;      // identity to record
  VerifyRequest request;   // as received (sanitised when recorded)
  // Set when the caller already decided to reject (malformed request or
  // permission denied); the policy is then not evaluated.
  std::optional<VerifyReason> rejection;
  std::string rejection_detail;
  // Used if the decision is positive: recorded so that the token the caller
  // then signs is tied to the record.
  std::string token_id;
  absl::Duration token_ttl = absl::Minutes(5);
  std::string token_key_id;
};

struct VerifyResult {
  uint64_t index = 0;
  AuditRecord record;
  Decision decision;
};

struct ChangeSubmission {
  std::string caller;
  RegistryChange change;
  // "malformed_request" or "permission_denied" to record a refused attempt.
  std::optional<std::string> rejection;
  std::string rejection_detail;
};

struct ChangeOutcome {
  uint64_t index = 0;
  AuditRecord record;
  ChangeResult result;  // for recorded refusals: reason as given, status unset
  uint64_t policy_version = 0;
};

struct LedgerStats {
  uint64_t batches = 0;
  uint64_t records = 0;
  uint64_t max_batch = 0;
};

class Ledger {
 public:
  using VerifyCallback = absl::AnyInvocable<void(absl::StatusOr<VerifyResult>)>;
  using ChangeCallback = absl::AnyInvocable<void(absl::StatusOr<ChangeOutcome>)>;

  // Opens or creates the log at options.db_path, checks it against its
  // latest checkpoint (size, root, signature), rebuilds the registry from the
  // log and starts the writer thread. `clock` must outlive the ledger.
  static absl::StatusOr<std::unique_ptr<Ledger>> Open(
      LedgerOptions options, const Clock* clock,
      std::shared_ptr<const token::Ed25519PrivateKey> checkpoint_key);

  // Drains queued work (each callback still runs) and stops the writer.
  ~Ledger();

  void SubmitVerify(VerifySubmission submission, VerifyCallback done);
  void SubmitChange(ChangeSubmission submission, ChangeCallback done);

  // ---- reads ----
  std::shared_ptr<const RegistryState> registry() const;
  // The latest checkpoint (tree_size 0 with the empty-tree root before the
  // first record).
  StoredCheckpoint latest_checkpoint() const;
  absl::StatusOr<StoredCheckpoint> CheckpointAt(uint64_t tree_size);
  // tree_size must not exceed the latest checkpoint's size.
  absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t tree_size);
  absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t from_size, uint64_t to_size);
  absl::StatusOr<std::optional<StoredRecord>> GetRecord(uint64_t index);
  absl::StatusOr<std::vector<StoredRecord>> Query(const RecordFilter& filter,
                                                  std::optional<uint64_t> after, int limit);

  const std::string& log_origin() const { return options_.log_origin; }
  std::string log_verifier_key() const { return signer_.VerifierKey(); }
  LedgerStats stats() const;

 private:
  struct VerifyItem {
    VerifySubmission sub;
    VerifyCallback done;
  };
  struct ChangeItem {
    ChangeSubmission sub;
    ChangeCallback done;
  };
  using Item = std::variant<VerifyItem, ChangeItem>;

  Ledger(LedgerOptions options, const Clock* clock, NoteSigner signer, std::unique_ptr<Store> writer);

  absl::Status Recover();
  void WriterLoop();
  // Writes `items` as one transaction and runs their callbacks.
  void ProcessBatch(std::vector<Item> items);
  void Enqueue(Item item);
  // Runs `fn` on a completion thread (inline before they are started).
  void Complete(absl::AnyInvocable<void()> fn);
  void CompletionLoop();

  template <typename Fn>
  auto WithReader(Fn&& fn) -> decltype(fn(std::declval<Store&>()));

  const LedgerOptions options_;
  const Clock* const clock_;
  const NoteSigner signer_;

  // Writer-thread state (also touched by Open before the thread starts).
  std::unique_ptr<Store> writer_store_;
  CompactRange range_;
  uint64_t last_time_us_ = 0;

  // Published state, guarded by mu_.
  mutable std::mutex mu_;
  std::shared_ptr<const RegistryState> registry_;  // GUARDED_BY(mu_)
  StoredCheckpoint checkpoint_;                    // GUARDED_BY(mu_)
  LedgerStats stats_;                              // GUARDED_BY(mu_)

  // Queue, guarded by queue_mu_.
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Item> queue_;  // GUARDED_BY(queue_mu_)
  bool stopping_ = false;   // GUARDED_BY(queue_mu_)

  // Reader connections.
  std::mutex readers_mu_;
  std::condition_variable readers_cv_;
  std::vector<std::unique_ptr<Store>> readers_;  // GUARDED_BY(readers_mu_)

  // Completion tasks, guarded by completion_mu_.
  std::mutex completion_mu_;
  std::condition_variable completion_cv_;
  std::deque<absl::AnyInvocable<void()>> completions_;  // GUARDED_BY(completion_mu_)
  bool completion_stopping_ = false;                     // GUARDED_BY(completion_mu_)
  std::vector<std::thread> completion_threads_;

  std::thread writer_;
};

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_LEDGER_H_
