#include "provenance_service/core/ledger.h"

#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "provenance_service/core/default_registry.h"
#include "provenance_service/core/model_uri.h"

namespace ossgate::provenance {
namespace {

constexpr char kMetaOrigin[] = "log_origin";
constexpr char kMetaVerifierKey[] = "log_verifier_key";

// Bounds for untrusted strings stored in records.
constexpr size_t kMaxStoredUri = kMaxUriLength;
constexpr size_t kMaxStoredField = 160;
// An unidentified caller is recorded with its certificate's fingerprint and
// names (services.cc), which need more room than an identity.
constexpr size_t kMaxStoredCaller = kMaxTextLength;

uint64_t ToMicros(absl::Time t) { return static_cast<uint64_t>(absl::ToUnixMicros(t)); }

// The registry change a record describes. Used both when the change is
// first applied and when the registry is replayed from the log, so the two
// cannot disagree.
absl::StatusOr<RegistryChange> ChangeFromRecord(const AuditRecord& r) {
  auto action = ChangeActionFromName(r.action);
  if (!action) return absl::DataLossError(absl::StrCat("unknown registry action ", r.action));
  RegistryChange c;
  c.action = *action;
  c.uri = r.target_uri;
  c.path = r.target_path;
  c.sha256 = r.target_sha256;
  c.size = r.target_size;
  c.description = r.description;
  c.reason = r.revoke_reason;
  c.family = r.family;
  return c;
}

class StoreNodeReader final : public NodeReader {
 public:
  explicit StoreNodeReader(Store& store) : store_(store) {}
  absl::StatusOr<Hash> Node(int level, uint64_t index) override { return store_.Node(level, index); }

 private:
  Store& store_;
};

}  // namespace

Ledger::Ledger(LedgerOptions options, const Clock* clock, NoteSigner signer,
               std::unique_ptr<Store> writer)
    : options_(std::move(options)),
      clock_(clock),
      signer_(std::move(signer)),
      writer_store_(std::move(writer)),
      registry_(std::make_shared<RegistryState>()) {}

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(
    LedgerOptions options, const Clock* clock,
    std::shared_ptr<const token::Ed25519PrivateKey> checkpoint_key) {
  if (options.max_batch == 0) options.max_batch = 1;
  if (options.reader_connections < 1) options.reader_connections = 1;
  auto signer = NoteSigner::Create(options.log_origin, std::move(checkpoint_key));
  if (!signer.ok()) return signer.status();
  auto writer = Store::Open(options.db_path);
  if (!writer.ok()) return writer.status();
  std::unique_ptr<Ledger> ledger(
      new Ledger(std::move(options), clock, *std::move(signer), *std::move(writer)));
  if (auto s = ledger->Recover(); !s.ok()) return s;
  for (int i = 0; i < ledger->options_.reader_connections; ++i) {
    auto reader = Store::Open(ledger->options_.db_path);
    if (!reader.ok()) return reader.status();
    ledger->readers_.push_back(*std::move(reader));
  }
  for (int i = 0; i < std::max(1, ledger->options_.completion_threads); ++i) {
    ledger->completion_threads_.emplace_back([l = ledger.get()] { l->CompletionLoop(); });
  }
  ledger->writer_ = std::thread([l = ledger.get()] { l->WriterLoop(); });
  return ledger;
}

absl::Status Ledger::Recover() {
  Store& store = *writer_store_;
  auto origin = store.GetMeta(kMetaOrigin);
  if (!origin.ok()) return origin.status();
  auto vkey = store.GetMeta(kMetaVerifierKey);
  if (!vkey.ok()) return vkey.status();
  if (!origin->has_value()) {
    // New log.
    if (auto s = store.PutMeta(kMetaOrigin, options_.log_origin); !s.ok()) return s;
    if (auto s = store.PutMeta(kMetaVerifierKey, signer_.VerifierKey()); !s.ok()) return s;
  } else {
    if (**origin != options_.log_origin) {
      return absl::FailedPreconditionError(absl::StrCat(
          options_.db_path, " holds the log \"", **origin, "\", not \"", options_.log_origin, "\""));
    }
    if (!vkey->has_value() || **vkey != signer_.VerifierKey()) {
      return absl::FailedPreconditionError(
          "the checkpoint key differs from the key this log was created with (" +
          vkey->value_or("none") + "); checkpoint key rotation is not supported");
    }
  }

  // Size and root must agree with the latest signed checkpoint.
  auto count = store.RecordCount();
  if (!count.ok()) return count.status();
  auto latest = store.LatestCheckpoint();
  if (!latest.ok()) return latest.status();
  uint64_t size = latest->has_value() ? (*latest)->tree_size : 0;
  if (*count != size) {
    return absl::DataLossError(absl::StrCat("log has ", *count, " records but its latest checkpoint covers ",
                                            size, "; run provctl audit verify"));
  }
  std::vector<Hash> tiling;
  for (auto [level, index] : CompactRange::Tiling(size)) {
    auto h = store.Node(level, index);
    if (!h.ok()) return h.status();
    tiling.push_back(*h);
  }
  auto range = CompactRange::FromTiling(size, std::move(tiling));
  if (!range.ok()) return range.status();
  range_ = *std::move(range);
  StoredCheckpoint cp;
  cp.tree_size = 0;
  cp.root = EmptyTreeHash();
  if (latest->has_value()) {
    cp = **latest;
    auto verifier = NoteVerifier::FromVerifierKey(signer_.VerifierKey());
    if (!verifier.ok()) return verifier.status();
    auto body = OpenCheckpoint(*verifier, cp.note, options_.log_origin);
    if (!body.ok() || body->size != size || body->root != range_.Root() || cp.root != body->root) {
      return absl::DataLossError("latest checkpoint does not match the stored tree; run provctl audit verify");
    }
    last_time_us_ = cp.time_us;
  }

  // Registry = fold of applied registry changes.
  auto state = std::make_shared<RegistryState>();
  auto replay = store.ScanAppliedRegistryChanges([&](const StoredRecord& row) -> absl::Status {
    auto record = DecodeRecord(row.record);
    if (!record.ok()) return absl::DataLossError(absl::StrCat("record ", row.index, ": ", record.status().message()));
    auto change = ChangeFromRecord(*record);
    if (!change.ok()) return change.status();
    ChangeResult r = ApplyChange(state.get(), *change, record->caller, record->time_us, row.index);
    if (r.reason != "applied") {
      return absl::DataLossError(absl::StrCat("record ", row.index, ": registry replay failed: ", r.status.message()));
    }
    return absl::OkStatus();
  });
  if (!replay.ok()) return replay;
  {
    std::lock_guard<std::mutex> lock(mu_);
    registry_ = std::move(state);
    checkpoint_ = cp;
  }

  if (size == 0 && options_.seed_default_registry) {
    std::vector<Item> seed;
    absl::Status failure;
    for (RegistryChange& c : DefaultRegistryChanges()) {
      ChangeSubmission sub;
      sub.caller = kDefaultRegistryCaller;
      sub.change = std::move(c);
      seed.emplace_back(ChangeItem{std::move(sub), [&failure](absl::StatusOr<ChangeOutcome> r) {
                                     if (!r.ok()) failure = r.status();
                                   }});
    }
    ProcessBatch(std::move(seed));
    if (!failure.ok()) return failure;
  }
  return absl::OkStatus();
}

Ledger::~Ledger() {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  // The writer has drained the queue; let the completion threads finish
  // every pending callback, then stop them.
  {
    std::lock_guard<std::mutex> lock(completion_mu_);
    completion_stopping_ = true;
  }
  completion_cv_.notify_all();
  for (std::thread& t : completion_threads_) t.join();
}

void Ledger::Complete(absl::AnyInvocable<void()> fn) {
  if (completion_threads_.empty()) {
    fn();
    return;
  }
  {
    std::lock_guard<std::mutex> lock(completion_mu_);
    completions_.push_back(std::move(fn));
  }
  completion_cv_.notify_one();
}

void Ledger::CompletionLoop() {
  for (;;) {
    absl::AnyInvocable<void()> fn;
    {
      std::unique_lock<std::mutex> lock(completion_mu_);
      completion_cv_.wait(lock, [this] { return completion_stopping_ || !completions_.empty(); });
      if (completions_.empty()) return;
      fn = std::move(completions_.front());
      completions_.pop_front();
    }
    fn();
  }
}

void Ledger::Enqueue(Item item) {
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(std::move(item));
      queue_cv_.notify_one();
      return;
    }
  }
  absl::Status stopped = absl::UnavailableError("the audit log is shutting down");
  std::visit([&](auto& it) { it.done(stopped); }, item);  // caller's thread: we are stopping
}

void Ledger::SubmitVerify(VerifySubmission submission, VerifyCallback done) {
  Enqueue(VerifyItem{std::move(submission), std::move(done)});
}

void Ledger::SubmitChange(ChangeSubmission submission, ChangeCallback done) {
  Enqueue(ChangeItem{std::move(submission), std::move(done)});
}

void Ledger::WriterLoop() {
  for (;;) {
    std::vector<Item> batch;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping and drained
      size_t n = std::min(queue_.size(), options_.max_batch);
      batch.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    ProcessBatch(std::move(batch));
  }
}

void Ledger::ProcessBatch(std::vector<Item> items) {
  Store& store = *writer_store_;
  std::shared_ptr<const RegistryState> base;
  {
    std::lock_guard<std::mutex> lock(mu_);
    base = registry_;
  }
  // Copy-on-write: registry changes in this batch go to `staged`, which is
  // published only if the transaction commits.
  std::shared_ptr<RegistryState> staged;
  const CompactRange range_before = range_;
  const uint64_t time_before = last_time_us_;

  struct Pending {
    uint64_t index;
    AuditRecord record;
    Decision decision;
    ChangeResult change;
  };
  std::vector<Pending> pending;
  pending.reserve(items.size());

  absl::Status status = store.Begin();
  for (size_t i = 0; status.ok() && i < items.size(); ++i) {
    const RegistryState& view = staged ? *staged : *base;
    uint64_t now = ToMicros(clock_->Now());
    last_time_us_ = std::max(last_time_us_, now);
    Pending p;
    p.index = range_.size();
    AuditRecord& r = p.record;
    r.time_us = last_time_us_;
    if (auto* v = std::get_if<VerifyItem>(&items[i])) {
      const VerifySubmission& s = v->sub;
      r.kind = RecordKind::kVerifyModel;
      r.caller = Sanitize(s.caller, kMaxStoredCaller);
      r.req_name = Sanitize(s.request.name, kMaxStoredField);
      r.req_source_uri = Sanitize(s.request.source_uri, kMaxStoredUri);
      r.req_sha256 = Sanitize(s.request.sha256, kMaxStoredField);
      r.req_size = s.request.size;
      r.req_worker_id = Sanitize(s.request.worker_id, kMaxStoredField);
      if (s.rejection) {
        p.decision.reason = *s.rejection;
        p.decision.detail = s.rejection_detail;
      } else {
        p.decision = Evaluate(view, s.request);
      }
      const Decision& d = p.decision;
      r.verdict = d.reason == VerifyReason::kVerified ? Verdict::kAccepted : Verdict::kRejected;
      r.reason = std::string(VerifyReasonCode(d.reason));
      r.detail = Sanitize(d.detail, kMaxTextLength);
      if (d.source) {
        r.matched_source = d.source->uri;
        r.matched_path = d.relative_path;
      }
      r.policy_version = view.policy_version;
      if (d.reason == VerifyReason::kVerified) {
        r.family = d.family;
        r.token_id = Sanitize(s.token_id, kMaxStoredField);
        r.token_exp_us = r.time_us + static_cast<uint64_t>(absl::ToInt64Microseconds(s.token_ttl));
        r.token_key_id = Sanitize(s.token_key_id, kMaxStoredField);
      }
    } else {
      const ChangeSubmission& s = std::get<ChangeItem>(items[i]).sub;
      r.kind = RecordKind::kRegistryChange;
      r.caller = Sanitize(s.caller, kMaxStoredCaller);
      r.action = std::string(ChangeActionName(s.change.action));
      r.target_uri = Sanitize(s.change.uri, kMaxStoredUri);
      r.target_path = Sanitize(s.change.path, kMaxPathLength);
      r.target_sha256 = Sanitize(s.change.sha256, kMaxStoredField);
      r.target_size = s.change.size;
      r.description = Sanitize(s.change.description, kMaxTextLength);
      r.revoke_reason = Sanitize(s.change.reason, kMaxTextLength);
      r.family = Sanitize(s.change.family, kMaxStoredField);
      if (s.rejection) {
        r.verdict = Verdict::kRejected;
        r.reason = *s.rejection;
        r.detail = Sanitize(s.rejection_detail, kMaxTextLength);
        r.policy_version = view.policy_version;
        p.change.reason = *s.rejection;
      } else {
        if (!staged) staged = std::make_shared<RegistryState>(*base);
        auto change = ChangeFromRecord(r);
        if (!change.ok()) {
          status = change.status();
          break;
        }
        p.change = ApplyChange(staged.get(), *change, r.caller, r.time_us, p.index);
        r.verdict = p.change.status.ok() ? Verdict::kAccepted : Verdict::kRejected;
        r.reason = p.change.reason;
        r.detail = Sanitize(std::string(p.change.status.message()), kMaxTextLength);
        r.policy_version = staged->policy_version;
      }
    }
    std::string bytes = EncodeRecord(r);
    Hash leaf = LeafHash(bytes);
    status = store.InsertRecord(p.index, bytes, leaf, r);
    if (!status.ok()) break;
    range_.Append(leaf, [&](int level, uint64_t index, const Hash& h) {
      if (status.ok()) status = store.InsertNode(level, index, h);
    });
    pending.push_back(std::move(p));
  }

  StoredCheckpoint cp;
  if (status.ok()) {
    cp.tree_size = range_.size();
    cp.root = range_.Root();
    cp.time_us = last_time_us_;
    cp.note = signer_.Sign(FormatCheckpoint({options_.log_origin, cp.tree_size, cp.root}));
    status = store.InsertCheckpoint(cp);
  }
  if (status.ok()) status = store.Commit();

  if (!status.ok()) {
    store.Rollback();
    range_ = range_before;
    last_time_us_ = time_before;
    absl::Status failure = absl::UnavailableError(
        absl::StrCat("audit log write failed, nothing was recorded: ", status.message()));
    for (Item& item : items) {
      std::visit([&](auto& it) { Complete([done = std::move(it.done), failure]() mutable { done(failure); }); },
                 item);
    }
    return;
  }

  {
    std::lock_guard<std::mutex> lock(mu_);
    if (staged) registry_ = staged;
    checkpoint_ = cp;
    ++stats_.batches;
    stats_.records += items.size();
    stats_.max_batch = std::max<uint64_t>(stats_.max_batch, items.size());
  }
  const uint64_t policy_version = staged ? staged->policy_version : base->policy_version;
  for (size_t i = 0; i < items.size(); ++i) {
    Pending& p = pending[i];
    if (auto* v = std::get_if<VerifyItem>(&items[i])) {
      Complete([done = std::move(v->done),
                result = VerifyResult{p.index, std::move(p.record), std::move(p.decision)}]() mutable {
        done(std::move(result));
      });
    } else {
      auto& c = std::get<ChangeItem>(items[i]);
      ChangeOutcome out;
      out.index = p.index;
      out.record = std::move(p.record);
      out.result = std::move(p.change);
      out.policy_version = policy_version;
      Complete([done = std::move(c.done), out = std::move(out)]() mutable { done(std::move(out)); });
    }
  }
}

// ---- reads ----

template <typename Fn>
auto Ledger::WithReader(Fn&& fn) -> decltype(fn(std::declval<Store&>())) {
  std::unique_ptr<Store> store;
  {
    std::unique_lock<std::mutex> lock(readers_mu_);
    readers_cv_.wait(lock, [this] { return !readers_.empty(); });
    store = std::move(readers_.back());
    readers_.pop_back();
  }
  auto result = fn(*store);
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    readers_.push_back(std::move(store));
  }
  readers_cv_.notify_one();
  return result;
}

std::shared_ptr<const RegistryState> Ledger::registry() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registry_;
}

StoredCheckpoint Ledger::latest_checkpoint() const {
  std::lock_guard<std::mutex> lock(mu_);
  return checkpoint_;
}

LedgerStats Ledger::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

absl::StatusOr<StoredCheckpoint> Ledger::CheckpointAt(uint64_t tree_size) {
  auto cp = WithReader([&](Store& s) { return s.CheckpointAt(tree_size); });
  if (!cp.ok()) return cp.status();
  if (!cp->has_value()) {
    return absl::NotFoundError(absl::StrCat("no checkpoint was signed at tree size ", tree_size));
  }
  return **cp;
}

absl::StatusOr<std::vector<Hash>> Ledger::InclusionProof(uint64_t index, uint64_t tree_size) {
  uint64_t latest = latest_checkpoint().tree_size;
  if (tree_size > latest) {
    return absl::OutOfRangeError(absl::StrCat("tree_size ", tree_size, " exceeds the latest checkpoint (", latest, ")"));
  }
  if (index >= tree_size) {
    return absl::OutOfRangeError(absl::StrCat("index ", index, " is not below tree_size ", tree_size));
  }
  return WithReader([&](Store& s) {
    StoreNodeReader nodes(s);
    return provenance::InclusionProof(nodes, index, tree_size);
  });
}

absl::StatusOr<std::vector<Hash>> Ledger::ConsistencyProof(uint64_t from_size, uint64_t to_size) {
  uint64_t latest = latest_checkpoint().tree_size;
  if (to_size > latest) {
    return absl::OutOfRangeError(absl::StrCat("to_size ", to_size, " exceeds the latest checkpoint (", latest, ")"));
  }
  if (from_size == 0 || from_size > to_size) {
    return absl::InvalidArgumentError("from_size: must satisfy 0 < from_size <= to_size");
  }
  return WithReader([&](Store& s) {
    StoreNodeReader nodes(s);
    return provenance::ConsistencyProof(nodes, from_size, to_size);
  });
}

absl::StatusOr<std::optional<StoredRecord>> Ledger::GetRecord(uint64_t index) {
  return WithReader([&](Store& s) { return s.GetRecord(index); });
}

absl::StatusOr<std::vector<StoredRecord>> Ledger::Query(const RecordFilter& filter,
                                                        std::optional<uint64_t> after, int limit) {
  // Never return records beyond the latest checkpoint: they are not yet
  // provable (cannot happen with the same-transaction checkpoint, but keeps
  // the contract independent of that).
  uint64_t latest = latest_checkpoint().tree_size;
  auto rows = WithReader([&](Store& s) { return s.Query(filter, after, limit); });
  if (!rows.ok()) return rows;
  while (!rows->empty() && rows->back().index >= latest) rows->pop_back();
  return rows;
}

}  // namespace ossgate::provenance
