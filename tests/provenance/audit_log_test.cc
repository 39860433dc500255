// Audit log: record encoding, signed checkpoints, the ledger (group commit,
// recovery, proofs, queries) and tamper detection on a modified database.
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "provenance_service/core/audit_record.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/ledger.h"
#include "provenance_service/core/log_verifier.h"
#include "provenance_service/token/encoding.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

// ---- records ----

AuditRecord SampleVerifyRecord() {
  AuditRecord r;
  r.kind = RecordKind::kVerifyModel;
  r.time_us = 1764136800000000;
  r.caller = "spiffe://ossgate/role/worker/w1";
  r.verdict = Verdict::kAccepted;
  r.reason = "verified";
  r.req_name = "m";
  r.req_source_uri = "hf://openai/gpt-oss-20b/x.gguf";
  r.req_sha256 = token::Sha256Hex("x");
  r.req_size = 7;
  r.req_worker_id = "w1";
  r.token_id = "abc";
  r.token_exp_us = 1764137100000000;
  r.policy_version = 9;
  return r;
}

TEST(AuditRecordTest, CanonicalRoundTrip) {
  AuditRecord r = SampleVerifyRecord();
  r.detail = "quote \" and \\x5c";
  std::string bytes = EncodeRecord(r);
  EXPECT_EQ(bytes.rfind(R"({"caller":"spiffe://ossgate/role/worker/w1",)", 0), 0u) << bytes;
  auto back = DecodeRecord(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(EncodeRecord(*back), bytes);
  EXPECT_EQ(back->req_size, 7u);
  EXPECT_EQ(back->detail, r.detail);
}

TEST(AuditRecordTest, FamilyIsAFieldOfItsOwnLeftOutWhenEmpty) {
  AuditRecord r = SampleVerifyRecord();
  const std::string without = EncodeRecord(r);
  // Records before families had no such key; they encode as they always did.
  EXPECT_EQ(without.find("family"), std::string::npos) << without;
  r.family = "qwen2";
  const std::string with = EncodeRecord(r);
  EXPECT_NE(with.find(R"("caller":"spiffe://ossgate/role/worker/w1","family":"qwen2","kind":"verify_model")"),
            std::string::npos)
      << with;
  auto back = DecodeRecord(with);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->family, "qwen2");
  EXPECT_EQ(EncodeRecord(*back), with);
  auto old = DecodeRecord(without);
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->family, "");
  // An explicitly empty family is not canonical.
  std::string empty = without;
  empty.insert(empty.find("\"kind\""), "\"family\":\"\",");
  EXPECT_FALSE(DecodeRecord(empty).ok()) << empty;
}

TEST(AuditRecordTest, RejectsNonCanonicalForms) {
  std::string bytes = EncodeRecord(SampleVerifyRecord());
  EXPECT_FALSE(DecodeRecord(bytes + " ").ok());
  EXPECT_FALSE(DecodeRecord(absl::StrCat("{\"zzz\":\"1\",", bytes.substr(1))).ok());  // unknown key
  std::string spaced = bytes;
  spaced.insert(1, " ");
  EXPECT_FALSE(DecodeRecord(spaced).ok());
  AuditRecord r = SampleVerifyRecord();
  std::string with_empty = EncodeRecord(r);
  with_empty.insert(1, "\"action\":\"\",");  // explicit empty value
  EXPECT_FALSE(DecodeRecord(with_empty).ok());
  EXPECT_FALSE(DecodeRecord("{}").ok());
  EXPECT_FALSE(DecodeRecord("not json").ok());
}

// ---- checkpoints / signed notes ----

std::shared_ptr<const token::Ed25519PrivateKey> NewKey() {
  return std::make_shared<const token::Ed25519PrivateKey>(*token::Ed25519PrivateKey::Generate());
}

TEST(CheckpointTest, SignedNoteFormatAndKeyId) {
  auto key = NewKey();
  auto signer = NoteSigner::Create("example.com/log", key);
  ASSERT_TRUE(signer.ok());
  CheckpointBody body{"example.com/log", 5, LeafHash("x")};
  std::string text = FormatCheckpoint(body);
  std::string note = signer->Sign(text);
  // Layout: text, blank line, "— name base64(keyid||sig)".
  ASSERT_EQ(note.substr(0, text.size()), text);
  EXPECT_EQ(note.substr(text.size(), 1 + 4 + 16), "\n\xE2\x80\x94 example.com/log ");
  // Key id per c2sp.org/signed-note: SHA-256(name || 0x0A || 0x01 || pk)[:4].
  std::string id_input = std::string("example.com/log\n\x01", 17) + key->public_key().raw();
  std::string sig_b64 = note.substr(text.size() + 1 + 4 + 16);
  sig_b64.pop_back();
  auto sig = token::Base64Decode(sig_b64);
  ASSERT_TRUE(sig.has_value());
  ASSERT_EQ(sig->size(), 68u);
  EXPECT_EQ(sig->substr(0, 4), token::Sha256(id_input).substr(0, 4));

  auto verifier = NoteVerifier::FromVerifierKey(signer->VerifierKey());
  ASSERT_TRUE(verifier.ok()) << verifier.status();
  auto opened = OpenCheckpoint(*verifier, note, "example.com/log");
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(opened->size, 5u);
  EXPECT_EQ(opened->root, body.root);
  EXPECT_FALSE(OpenCheckpoint(*verifier, note, "other/log").ok());
}

TEST(CheckpointTest, RejectsTamperedOrForeignNotes) {
  auto signer = NoteSigner::Create("example.com/log", NewKey());
  auto verifier = NoteVerifier::FromVerifierKey(signer->VerifierKey());
  std::string note = signer->Sign(FormatCheckpoint({"example.com/log", 5, LeafHash("x")}));
  std::string bumped = note;
  bumped[bumped.find('\n') + 1] = '6';  // size 5 -> 6
  EXPECT_EQ(verifier->Open(bumped).status().code(), absl::StatusCode::kUnauthenticated);
  // Same name, different key: signature ignored, so nothing verifies.
  auto other = NoteSigner::Create("example.com/log", NewKey());
  std::string foreign = other->Sign(FormatCheckpoint({"example.com/log", 5, LeafHash("x")}));
  EXPECT_EQ(verifier->Open(foreign).status().code(), absl::StatusCode::kUnauthenticated);
  // Extra signature from an unknown key is ignored.
  std::string cosigned = note + foreign.substr(foreign.rfind("\xE2\x80\x94"));
  EXPECT_TRUE(verifier->Open(cosigned).ok());
  EXPECT_FALSE(verifier->Open("no signature\n").ok());
  EXPECT_FALSE(NoteVerifier::FromVerifierKey("bad+key").ok());
  EXPECT_FALSE(NoteSigner::Create("has space", NewKey()).ok());
}

// ---- ledger ----

class FakeClock : public Clock {
 public:
  absl::Time Now() const override { return now_.load(); }
  void Advance(absl::Duration d) { now_.store(now_.load() + d); }
  std::atomic<absl::Time> now_{absl::FromUnixSeconds(1764136800)};
};

class LedgerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/provenance_ledger_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    options_.db_path = dir_ + "/audit.db";
    options_.log_origin = "test.local/audit";
    key_ = NewKey();
    Reopen();
  }
  void TearDown() override {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    ledger_.reset();
    auto l = Ledger::Open(options_, &clock_, key_);
    ASSERT_TRUE(l.ok()) << l.status();
    ledger_ = *std::move(l);
  }
  ChangeOutcome Change(RegistryChange c, std::string caller = "spiffe://ossgate/role/admin/a") {
    absl::Notification done;
    absl::StatusOr<ChangeOutcome> out;
    ledger_->SubmitChange({caller, std::move(c)}, [&](absl::StatusOr<ChangeOutcome> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ChangeOutcome{};
  }
  VerifyResult Verify(VerifyRequest req) {
    absl::Notification done;
    absl::StatusOr<VerifyResult> out;
    VerifySubmission sub;
    sub.caller = "spiffe://ossgate/role/worker/" + req.worker_id;
    sub.request = std::move(req);
    sub.token_id = "t";
    ledger_->SubmitVerify(std::move(sub), [&](absl::StatusOr<VerifyResult> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : VerifyResult{};
  }
  NoteVerifier Verifier() { return *NoteVerifier::FromVerifierKey(ledger_->log_verifier_key()); }
  void RegisterModel() {
    EXPECT_EQ(Change({ChangeAction::kAddFile, "ossgate://bundled", "tiny.gguf", sha_, 42}).result.reason, "applied");
  }

  std::string dir_;
  LedgerOptions options_;
  FakeClock clock_;
  std::shared_ptr<const token::Ed25519PrivateKey> key_;
  std::unique_ptr<Ledger> ledger_;
  const std::string sha_ = token::Sha256Hex("tiny model");
};

TEST_F(LedgerTest, SeedsDefaultRegistryAsLoggedChanges) {
  auto reg = ledger_->registry();
  EXPECT_TRUE(reg->sources.count("hf://openai/gpt-oss-20b"));
  EXPECT_EQ(reg->policy_version, reg->sources.size());
  StoredCheckpoint cp = ledger_->latest_checkpoint();
  EXPECT_EQ(cp.tree_size, reg->sources.size());
  auto rec = ledger_->GetRecord(0);
  ASSERT_TRUE(rec.ok() && rec->has_value());
  EXPECT_EQ(DecodeRecord((*rec)->record)->caller, "system:default-registry");
}

TEST_F(LedgerTest, DecisionsAreRecordedAndProvable) {
  RegisterModel();
  VerifyResult ok = Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, "w1"});
  EXPECT_EQ(ok.decision.reason, VerifyReason::kVerified);
  EXPECT_EQ(ok.record.verdict, Verdict::kAccepted);
  EXPECT_EQ(ok.record.token_exp_us, ok.record.time_us + 300000000u);
  VerifyResult bad = Verify({"tiny", "upload://u/tiny.gguf", sha_, 42, "w1"});
  EXPECT_EQ(bad.decision.reason, VerifyReason::kUntrustedSource);
  EXPECT_EQ(bad.index, ok.index + 1);

  StoredCheckpoint cp = ledger_->latest_checkpoint();
  EXPECT_EQ(cp.tree_size, bad.index + 1);
  auto body = OpenCheckpoint(Verifier(), cp.note, "test.local/audit");
  ASSERT_TRUE(body.ok()) << body.status();
  for (uint64_t i : {ok.index, bad.index, uint64_t{0}}) {
    auto proof = ledger_->InclusionProof(i, cp.tree_size);
    ASSERT_TRUE(proof.ok()) << proof.status();
    auto rec = ledger_->GetRecord(i);
    EXPECT_TRUE(VerifyInclusion(i, cp.tree_size, LeafHash((*rec)->record), *proof, body->root).ok());
  }
  auto old_cp = ledger_->CheckpointAt(ok.index);  // the batch before RegisterModel's
  ASSERT_TRUE(old_cp.ok()) << old_cp.status();
  auto cproof = ledger_->ConsistencyProof(old_cp->tree_size, cp.tree_size);
  ASSERT_TRUE(cproof.ok());
  EXPECT_TRUE(VerifyConsistency(old_cp->tree_size, cp.tree_size, old_cp->root, body->root, *cproof).ok());
  EXPECT_EQ(ledger_->InclusionProof(0, cp.tree_size + 1).status().code(), absl::StatusCode::kOutOfRange);
}

TEST_F(LedgerTest, QueryFilters) {
  RegisterModel();
  Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, "w1"});
  Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 43, "w2"});
  RecordFilter f;
  f.sha256 = sha_;
  EXPECT_EQ(ledger_->Query(f, std::nullopt, 100)->size(), 3u);  // add_file + 2 verifies
  f.verdict = "rejected";
  auto rejected = ledger_->Query(f, std::nullopt, 100);
  ASSERT_EQ(rejected->size(), 1u);
  EXPECT_EQ(DecodeRecord(rejected->front().record)->reason, "size_mismatch");
  RecordFilter by_caller;
  by_caller.caller = "spiffe://ossgate/role/worker/w1";
  EXPECT_EQ(ledger_->Query(by_caller, std::nullopt, 100)->size(), 1u);
  RecordFilter by_time;
  by_time.start_time_us = static_cast<uint64_t>(absl::ToUnixMicros(clock_.Now() + absl::Seconds(1)));
  EXPECT_EQ(ledger_->Query(by_time, std::nullopt, 100)->size(), 0u);
  // Pagination by cursor.
  RecordFilter all;
  auto page1 = ledger_->Query(all, std::nullopt, 2);
  ASSERT_EQ(page1->size(), 2u);
  auto page2 = ledger_->Query(all, page1->back().index, 2);
  EXPECT_EQ(page2->front().index, page1->back().index + 1);
}

TEST_F(LedgerTest, ConcurrentSubmissionsAreGroupCommitted) {
  RegisterModel();
  constexpr int kThreads = 8, kPerThread = 40;
  std::atomic<int> answered{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<uint64_t> indices;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        VerifyResult r = Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, absl::StrCat("w", t)});
        EXPECT_EQ(r.decision.reason, VerifyReason::kVerified);
        std::lock_guard<std::mutex> lock(mu);
        indices.insert(r.index);
        ++answered;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(indices.size(), size_t{kThreads * kPerThread});
  LedgerStats stats = ledger_->stats();
  EXPECT_LT(stats.batches, stats.records);  // some transactions held several records
  EXPECT_GT(stats.max_batch, 1u);
  auto store = Store::Open(options_.db_path, true);
  auto report = VerifyStoredLog(**store, Verifier(), "test.local/audit");
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->records, ledger_->latest_checkpoint().tree_size);
}

TEST_F(LedgerTest, RecoversRegistryTreeAndCheckpointAfterReopen) {
  RegisterModel();
  Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, "w1"});
  StoredCheckpoint before = ledger_->latest_checkpoint();
  uint64_t version = ledger_->registry()->policy_version;
  Reopen();
  EXPECT_EQ(ledger_->latest_checkpoint().tree_size, before.tree_size);
  EXPECT_EQ(ledger_->latest_checkpoint().root, before.root);
  EXPECT_EQ(ledger_->registry()->policy_version, version);
  VerifyResult again = Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, "w1"});
  EXPECT_EQ(again.decision.reason, VerifyReason::kVerified);
  EXPECT_EQ(again.index, before.tree_size);
  // A different checkpoint key must not silently take over the log.
  ledger_.reset();
  EXPECT_EQ(Ledger::Open(options_, &clock_, NewKey()).status().code(), absl::StatusCode::kFailedPrecondition);
  options_.log_origin = "other/origin";
  EXPECT_EQ(Ledger::Open(options_, &clock_, key_).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(LedgerTest, RegistryChangesAndRefusalsAreLogged) {
  ChangeOutcome dup = Change({ChangeAction::kAddSource, "hf://openai/gpt-oss-20b"});
  EXPECT_EQ(dup.record.verdict, Verdict::kRejected);
  EXPECT_EQ(dup.record.reason, "already_exists");
  ChangeSubmission refused;
  refused.caller = "spiffe://ossgate/role/worker/w1";
  refused.change = {ChangeAction::kAddSource, "hf://evil\x01\xff/x"};
  refused.rejection = "permission_denied";
  refused.rejection_detail = "role worker may not change the registry";
  absl::Notification done;
  ledger_->SubmitChange(refused, [&](absl::StatusOr<ChangeOutcome> r) {
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->record.target_uri, "hf://evil\\x01\\xff/x");
    EXPECT_EQ(r->record.verdict, Verdict::kRejected);
    done.Notify();
  });
  done.WaitForNotification();
  uint64_t version = ledger_->registry()->policy_version;
  Reopen();  // refused attempts are not replayed into the registry
  EXPECT_EQ(ledger_->registry()->policy_version, version);
}

TEST_F(LedgerTest, FamiliesAreRecordedReplayedAndQueryable) {
  ChangeOutcome src = Change({ChangeAction::kAddSource, "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF", "", "", 0, "", "", "qwen2"});
  ASSERT_EQ(src.result.reason, "applied");
  EXPECT_EQ(src.record.family, "qwen2");
  ChangeOutcome file = Change({ChangeAction::kAddFile, "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF", "q.gguf", sha_, 42});
  ASSERT_EQ(file.result.reason, "applied");
  EXPECT_EQ(file.record.family, "");  // as requested; approvals take the source's
  VerifyResult ok = Verify({"q", "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/q.gguf", sha_, 42, "w1"});
  ASSERT_EQ(ok.decision.reason, VerifyReason::kVerified);
  EXPECT_EQ(ok.decision.family, "qwen2");
  EXPECT_EQ(ok.record.family, "qwen2");
  VerifyResult refused = Verify({"q", "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/q.gguf", sha_, 43, "w1"});
  EXPECT_EQ(refused.record.family, "");  // only approvals name a family
  // The file entry gets a family of its own (the admin's word), logged.
  ChangeOutcome set = Change({ChangeAction::kSetFamily, "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF", "q.gguf", sha_, 0, "",
                              "", "phi3"});
  ASSERT_EQ(set.result.reason, "applied") << set.result.status;
  EXPECT_EQ(set.record.action, "set_family");
  EXPECT_EQ(set.record.family, "phi3");
  EXPECT_EQ(set.record.target_sha256, sha_);
  EXPECT_EQ(Verify({"q", "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/q.gguf", sha_, 42, "w2"}).record.family, "phi3");
  // Rebuilt from the log: the families come back.
  Reopen();
  auto reg = ledger_->registry();
  EXPECT_EQ(reg->sources.find("hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF")->second.family, "qwen2");
  EXPECT_EQ(reg->files.find(FileKey{"hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF", "q.gguf", sha_})->second.family, "phi3");
  EXPECT_EQ(Verify({"q", "hf://Qwen/Qwen2.5-1.5B-Instruct-GGUF/q.gguf", sha_, 42, "w3"}).decision.family, "phi3");
  // Queries by family: the seeded qwen2 sources, the added one and the approval.
  RecordFilter f;
  f.family = "qwen2";
  auto qwen = ledger_->Query(f, std::nullopt, 100);
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  ASSERT_EQ(qwen->size(), 4u);
  EXPECT_EQ(qwen->at(2).index, src.index);
  EXPECT_EQ(qwen->at(3).index, ok.index);
  for (const StoredRecord& row : *qwen) EXPECT_EQ(row.family, "qwen2");
  f.family = "phi3";
  f.kind = "verify_model";
  EXPECT_EQ(ledger_->Query(f, std::nullopt, 100)->size(), 2u);
}

// ---- tamper detection ----

class TamperTest : public LedgerTest {
 protected:
  void SetUp() override {
    LedgerTest::SetUp();
    RegisterModel();
    for (int i = 0; i < 20; ++i) {
      Verify({"tiny", "ossgate://bundled/tiny.gguf", sha_, 42, absl::StrCat("w", i)});
    }
    size_ = ledger_->latest_checkpoint().tree_size;
    saved_note_ = ledger_->latest_checkpoint().note;
    vkey_ = ledger_->log_verifier_key();
    ledger_.reset();
    auto store = Store::Open(options_.db_path);
    ASSERT_TRUE(store.ok());
    store_ = *std::move(store);
  }
  void TearDown() override {
    store_.reset();
    LedgerTest::TearDown();
  }
  LogVerifyReport Run(const std::string& trusted = "") {
    auto verifier = NoteVerifier::FromVerifierKey(vkey_);
    auto report = VerifyStoredLog(*store_, *verifier, "test.local/audit", trusted);
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : LogVerifyReport{};
  }
  uint64_t size_ = 0;
  std::string saved_note_, vkey_;
  std::unique_ptr<Store> store_;
};

TEST_F(TamperTest, IntactLogVerifies) {
  LogVerifyReport r = Run(saved_note_);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, size_);
  EXPECT_EQ(r.verified_size, size_);
}

TEST_F(TamperTest, ModifiedRecordIsPinpointed) {
  // Flip a rejected decision to accepted in record 15 (keeping the row valid).
  auto row = store_->GetRecord(15);
  std::string bytes = (*row)->record;
  size_t pos = bytes.find("\"w");
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + 2] = 'X';
  ASSERT_TRUE(store_->ExecForTest(absl::StrCat("UPDATE records SET record = X'", token::HexEncode(bytes),
                                               "' WHERE idx = 15")).ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.first_bad_index.has_value());
  EXPECT_EQ(*r.first_bad_index, 15u);
  EXPECT_TRUE(r.exact);
}

TEST_F(TamperTest, RewrittenRecordAndHashIsBoundedByCheckpoints) {
  auto row = store_->GetRecord(14);
  AuditRecord rec = *DecodeRecord((*row)->record);
  rec.verdict = Verdict::kRejected;
  rec.reason = "untrusted_source";
  std::string bytes = EncodeRecord(rec);
  ASSERT_TRUE(store_->ExecForTest(absl::StrCat("UPDATE records SET record = X'", token::HexEncode(bytes),
                                               "', verdict = 'rejected', leaf_hash = X'",
                                               HashHex(LeafHash(bytes)), "' WHERE idx = 14")).ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.first_bad_index.has_value());
  // One record per batch here, so the signed checkpoints pin it exactly.
  EXPECT_EQ(*r.first_bad_index, 14u);
}

TEST_F(TamperTest, DeletedRecordIsReported) {
  ASSERT_TRUE(store_->ExecForTest("DELETE FROM records WHERE idx = 10").ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(*r.first_bad_index, 10u);
}

TEST_F(TamperTest, QueryColumnTamperingIsReported) {
  ASSERT_TRUE(store_->ExecForTest("UPDATE records SET caller = 'someone-else' WHERE idx = 12").ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(*r.first_bad_index, 12u);
}

TEST_F(TamperTest, FamilyColumnTamperingIsReported) {
  // Record 15 is an approval of a gpt-oss file; claiming another family in
  // the query column (to hide it from a family query) is caught.
  auto row = store_->GetRecord(15);
  ASSERT_TRUE(row.ok() && row->has_value());
  ASSERT_EQ((*row)->family, "gpt-oss");
  ASSERT_TRUE(store_->ExecForTest("UPDATE records SET family = 'qwen2' WHERE idx = 15").ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(*r.first_bad_index, 15u);
}

TEST_F(TamperTest, TruncationIsCaughtWithATrustedCheckpoint) {
  ASSERT_TRUE(store_->ExecForTest(absl::StrCat("DELETE FROM records WHERE idx >= ", size_ - 3)).ok());
  ASSERT_TRUE(store_->ExecForTest(absl::StrCat("DELETE FROM checkpoints WHERE tree_size > ", size_ - 3)).ok());
  EXPECT_TRUE(Run().ok);  // internally consistent after a clean truncation...
  LogVerifyReport r = Run(saved_note_);  // ...but not with the auditor's saved checkpoint
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(*r.first_bad_index, size_ - 3);
}

TEST_F(TamperTest, ForgedCheckpointIsReported) {
  ASSERT_TRUE(store_->ExecForTest(absl::StrCat("UPDATE checkpoints SET note = replace(note, '\n", size_,
                                               "\n', '\n", size_ + 1, "\n') WHERE tree_size = ", size_)).ok());
  LogVerifyReport r = Run();
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.problem.find("checkpoint"), std::string::npos) << r.problem;
}

TEST_F(TamperTest, LedgerRefusesToOpenTamperedLog) {
  ASSERT_TRUE(store_->ExecForTest("DELETE FROM records WHERE idx = 3").ok());
  store_.reset();
  EXPECT_EQ(Ledger::Open(options_, &clock_, key_).status().code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace ossgate::provenance
