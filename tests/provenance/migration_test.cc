// A database written by the provenance service before model families
// (schema 1; tests/provenance/fixtures/schema_v1, made by that version's
// binaries) still opens: read-only as it is (provctl audit verify), and for
// writing migrated to schema 2 without changing a record, a leaf hash or a
// checkpoint. Its entries, none of which names a family, approve gpt-oss;
// set_family gives an old entry its family.
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "provenance_service/core/checkpoint.h"
#include "provenance_service/core/ledger.h"
#include "provenance_service/core/log_verifier.h"
#include "provenance_service/core/store.h"
#include "provenance_service/token/ed25519.h"
#include "provenance_service/token/sha256.h"

namespace ossgate::provenance {
namespace {

const std::string kFixtures = std::string(OSSGATE_SOURCE_DIR) + "/tests/provenance/fixtures/schema_v1/";
// The log's verifier key, as `provctl keygen --name` printed it for log.pem.
constexpr char kLogKey[] = "ossgate.local/provenance+c957d066+AdxsCZl3LfSq+eF89R/vUULwLi4smZdha7hSVGqjfEdf";
constexpr char kOrigin[] = "ossgate.local/provenance";
constexpr uint64_t kRecords = 18;
// The files the old service registered (their bytes, which the fixture's
// comments name).
const std::string kGptOss = token::Sha256Hex("previous-version gpt-oss model");  // 30 bytes
const std::string kQwen = token::Sha256Hex("previous-version qwen2 model");      // 28 bytes

class FixedClock : public Clock {
 public:
  // After the fixture's last record (2026-12-07T05:38Z), so times stay ordered.
  absl::Time Now() const override { return absl::FromUnixSeconds(1796622000); }  // 2026-12-07T05:40:00Z
};

int UserVersion(const std::string& path) {
  sqlite3* db = nullptr;
  int version = -1;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_exec(
        db, "PRAGMA user_version",
        [](void* out, int, char** values, char**) {
          *static_cast<int*>(out) = atoi(values[0]);
          return 0;
        },
        &version, nullptr);
  }
  sqlite3_close(db);
  return version;
}

class MigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/provenance_migration_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    db_ = dir_ + "/audit.db";
    // Rebuild the old database from its dump.
    auto sql = token::ReadSmallFile(kFixtures + "audit.sql");
    ASSERT_TRUE(sql.ok()) << sql.status();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql->c_str(), nullptr, nullptr, &err);
    const std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
    ASSERT_EQ(UserVersion(db_), 1);
    // Read as text: git keeps no 0600 mode, which LoadPemFile insists on.
    auto pem = token::ReadSmallFile(kFixtures + "log.pem");
    ASSERT_TRUE(pem.ok()) << pem.status();
    auto key = token::Ed25519PrivateKey::FromPem(*pem);
    ASSERT_TRUE(key.ok()) << key.status();
    key_ = std::make_shared<const token::Ed25519PrivateKey>(*std::move(key));
    options_.db_path = db_;
    options_.log_origin = kOrigin;
  }
  void TearDown() override {
    ledger_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Every record's bytes and leaf hash, and the latest checkpoint.
  struct Snapshot {
    std::vector<std::string> records;
    std::vector<Hash> leaves;
    std::string note;
  };
  Snapshot Take(bool read_only) {
    Snapshot s;
    auto store = Store::Open(db_, read_only);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return s;
    EXPECT_TRUE((*store)
                    ->ScanRecords(0,
                                  [&](const StoredRecord& r) {
                                    s.records.push_back(r.record);
                                    s.leaves.push_back(r.leaf_hash);
                                    return true;
                                  })
                    .ok());
    auto cp = (*store)->LatestCheckpoint();
    if (cp.ok() && cp->has_value()) s.note = (*cp)->note;
    return s;
  }

  LogVerifyReport VerifyLog(bool read_only) {
    auto store = Store::Open(db_, read_only);
    EXPECT_TRUE(store.ok()) << store.status();
    if (!store.ok()) return {};
    auto report = VerifyStoredLog(**store, *NoteVerifier::FromVerifierKey(kLogKey), kOrigin, "");
    EXPECT_TRUE(report.ok()) << report.status();
    return report.ok() ? *report : LogVerifyReport{};
  }

  void OpenLedger() {
    ledger_.reset();
    auto ledger = Ledger::Open(options_, &clock_, key_);
    ASSERT_TRUE(ledger.ok()) << ledger.status();
    ledger_ = *std::move(ledger);
  }

  VerifyResult Verify(const std::string& uri, const std::string& sha, uint64_t size) {
    absl::Notification done;
    absl::StatusOr<VerifyResult> out;
    VerifySubmission sub;
    sub.caller = "spiffe://ossgate/role/worker/w1";
    sub.request = {"m", uri, sha, size, "w1"};
    sub.token_id = "t";
    ledger_->SubmitVerify(std::move(sub), [&](absl::StatusOr<VerifyResult> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : VerifyResult{};
  }

  ChangeOutcome Change(RegistryChange c) {
    absl::Notification done;
    absl::StatusOr<ChangeOutcome> out;
    ledger_->SubmitChange({"spiffe://ossgate/role/admin/ops", std::move(c)}, [&](absl::StatusOr<ChangeOutcome> r) {
      out = std::move(r);
      done.Notify();
    });
    done.WaitForNotification();
    EXPECT_TRUE(out.ok()) << out.status();
    return out.ok() ? *out : ChangeOutcome{};
  }

  std::string dir_, db_;
  LedgerOptions options_;
  FixedClock clock_;
  std::shared_ptr<const token::Ed25519PrivateKey> key_;
  std::unique_ptr<Ledger> ledger_;
};

TEST_F(MigrationTest, ReadOnlyOpensTheOldSchemaAsItIs) {
  // provctl audit verify opens read-only: no migration, and the log verifies.
  auto store = Store::Open(db_, /*read_only=*/true);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), 1);
  auto row = (*store)->GetRecord(16);
  ASSERT_TRUE(row.ok() && row->has_value()) << row.status();
  EXPECT_EQ((*row)->family, "");
  // A family query finds nothing there (no record of that time names one).
  RecordFilter f;
  f.family = "gpt-oss";
  auto none = (*store)->Query(f, std::nullopt, 100);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
  store->reset();
  LogVerifyReport report = VerifyLog(/*read_only=*/true);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, kRecords);
  EXPECT_EQ(UserVersion(db_), 1);
}

TEST_F(MigrationTest, OpeningForWritingMigratesWithoutChangingTheLog) {
  const Snapshot before = Take(/*read_only=*/true);
  ASSERT_EQ(before.records.size(), kRecords);
  OpenLedger();
  EXPECT_EQ(UserVersion(db_), kSchemaVersion);
  ledger_.reset();
  const Snapshot after = Take(/*read_only=*/false);
  EXPECT_EQ(after.records, before.records);
  EXPECT_EQ(after.leaves, before.leaves);
  EXPECT_EQ(after.note, before.note);
  LogVerifyReport report = VerifyLog(/*read_only=*/false);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, kRecords);
  // Opened again: nothing left to migrate.
  OpenLedger();
  EXPECT_EQ(ledger_->latest_checkpoint().tree_size, kRecords);
}

TEST_F(MigrationTest, OldEntriesApproveGptOssUntilTheyAreGivenAFamily) {
  OpenLedger();
  auto reg = ledger_->registry();
  // The old seed: the same sources, none with a family; nothing re-seeded.
  EXPECT_EQ(ledger_->latest_checkpoint().tree_size, kRecords);
  ASSERT_TRUE(reg->sources.count("hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF"));
  for (const auto& [uri, source] : reg->sources) EXPECT_EQ(source.family, "") << uri;
  EXPECT_TRUE(reg->files.find(FileKey{"file:///srv/models", "old.gguf",
                                      token::Sha256Hex("previous-version revoked model")})
                  ->second.revoked);

  // The gpt-oss file registered before families: approved as gpt-oss.
  VerifyResult gpt = Verify("ossgate://bundled/legacy-gpt-oss.gguf", kGptOss, 30);
  ASSERT_EQ(gpt.decision.reason, VerifyReason::kVerified) << gpt.decision.detail;
  EXPECT_EQ(gpt.decision.family, "gpt-oss");
  EXPECT_EQ(gpt.record.family, "gpt-oss");
  EXPECT_EQ(gpt.index, kRecords);
  // The qwen2 file registered before families: gpt-oss too (the worker will
  // refuse it as such) until the admin names its family.
  const std::string qwen_uri = "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF/qwen2.5-0.5b-instruct-q4_k_m.gguf";
  EXPECT_EQ(Verify(qwen_uri, kQwen, 28).decision.family, "gpt-oss");
  ChangeOutcome set = Change({ChangeAction::kSetFamily, "hf://Qwen/Qwen2.5-0.5B-Instruct-GGUF",
                              "qwen2.5-0.5b-instruct-q4_k_m.gguf", kQwen, 0, "", "", "qwen2"});
  ASSERT_EQ(set.result.reason, "applied") << set.result.status;
  VerifyResult qwen = Verify(qwen_uri, kQwen, 28);
  ASSERT_EQ(qwen.decision.reason, VerifyReason::kVerified);
  EXPECT_EQ(qwen.decision.family, "qwen2");
  // An old seeded source named now: its files without a family follow.
  ASSERT_EQ(Change({ChangeAction::kSetFamily, "hf://microsoft/Phi-3-mini-4k-instruct-gguf", "", "", 0, "", "", "phi3"})
                .result.reason,
            "applied");
  const std::string phi = token::Sha256Hex("phi");
  ASSERT_EQ(Change({ChangeAction::kAddFile, "hf://microsoft/Phi-3-mini-4k-instruct-gguf",
                    "Phi-3-mini-4k-instruct-q4.gguf", phi, 3})
                .result.reason,
            "applied");
  EXPECT_EQ(Verify("hf://microsoft/Phi-3-mini-4k-instruct-gguf/Phi-3-mini-4k-instruct-q4.gguf", phi, 3).decision.family,
            "phi3");

  // Old and new records together still verify, and survive a restart.
  ledger_.reset();
  LogVerifyReport report = VerifyLog(/*read_only=*/true);
  EXPECT_TRUE(report.ok) << report.problem;
  EXPECT_EQ(report.records, kRecords + 7);
  OpenLedger();
  EXPECT_EQ(Verify(qwen_uri, kQwen, 28).decision.family, "qwen2");
  RecordFilter f;
  f.family = "qwen2";
  auto rows = ledger_->Query(f, std::nullopt, 100);
  ASSERT_TRUE(rows.ok());
  EXPECT_EQ(rows->size(), 3u);  // set_family, and two approvals
}

TEST_F(MigrationTest, ADatabaseOfANewerSchemaIsRefused) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version=3", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  for (bool read_only : {false, true}) {
    auto store = Store::Open(db_, read_only);
    ASSERT_FALSE(store.ok());
    EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  }
}

}  // namespace
}  // namespace ossgate::provenance
