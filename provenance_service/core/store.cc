#include "provenance_service/core/store.h"

#include <sqlite3.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace ossgate::provenance {
namespace {

// RAII reset of a cached statement.
class StmtScope {
 public:
  explicit StmtScope(sqlite3_stmt* s) : s_(s) {}
  ~StmtScope() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
}
void BindBlob(sqlite3_stmt* s, int i, const void* p, size_t n) {
  sqlite3_bind_blob(s, i, p, static_cast<int>(n), SQLITE_TRANSIENT);
}
void BindU64(sqlite3_stmt* s, int i, uint64_t v) {
  sqlite3_bind_int64(s, i, static_cast<sqlite3_int64>(v));
}
std::string ColumnString(sqlite3_stmt* s, int i) {
  const void* p = sqlite3_column_blob(s, i);
  int n = sqlite3_column_bytes(s, i);
  return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), static_cast<size_t>(n));
}
uint64_t ColumnU64(sqlite3_stmt* s, int i) { return static_cast<uint64_t>(sqlite3_column_int64(s, i)); }
Hash ColumnHash(sqlite3_stmt* s, int i) {
  Hash h{};
  const void* p = sqlite3_column_blob(s, i);
  if (p != nullptr && sqlite3_column_bytes(s, i) == 32) std::memcpy(h.data(), p, 32);
  return h;
}

constexpr char kRecordColumns[] = "idx, record, leaf_hash, time_us, kind, verdict, caller, sha256, source, family";
// Schema 1 (read-only) has no family column: every record there has none.
constexpr char kRecordColumnsV1[] = "idx, record, leaf_hash, time_us, kind, verdict, caller, sha256, source, ''";

StoredRecord ReadRecordRow(sqlite3_stmt* s) {
  StoredRecord r;
  r.index = ColumnU64(s, 0);
  r.record = ColumnString(s, 1);
  r.leaf_hash = ColumnHash(s, 2);
  r.time_us = ColumnU64(s, 3);
  r.kind = ColumnString(s, 4);
  r.verdict = ColumnString(s, 5);
  r.caller = ColumnString(s, 6);
  r.sha256 = ColumnString(s, 7);
  r.source = ColumnString(s, 8);
  r.family = ColumnString(s, 9);
  return r;
}

StoredCheckpoint ReadCheckpointRow(sqlite3_stmt* s) {
  StoredCheckpoint c;
  c.tree_size = ColumnU64(s, 0);
  c.root = ColumnHash(s, 1);
  c.note = ColumnString(s, 2);
  c.time_us = ColumnU64(s, 3);
  return c;
}

constexpr char kSchemaV1[] = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE records(
  idx INTEGER PRIMARY KEY,
  record BLOB NOT NULL,
  leaf_hash BLOB NOT NULL,
  time_us INTEGER NOT NULL,
  kind TEXT NOT NULL,
  verdict TEXT NOT NULL,
  caller TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  source TEXT NOT NULL);
CREATE INDEX records_time ON records(time_us);
CREATE INDEX records_sha256 ON records(sha256);
CREATE INDEX records_source ON records(source);
CREATE INDEX records_caller ON records(caller);
CREATE INDEX records_kind ON records(kind, verdict);
CREATE TABLE tree_nodes(
  level INTEGER NOT NULL,
  idx INTEGER NOT NULL,
  hash BLOB NOT NULL,
  PRIMARY KEY(level, idx)) WITHOUT ROWID;
CREATE TABLE checkpoints(
  tree_size INTEGER PRIMARY KEY,
  root_hash BLOB NOT NULL,
  note TEXT NOT NULL,
  time_us INTEGER NOT NULL);
)sql";

// Schema 1 -> 2: model families. Records written before have no family.
constexpr char kMigrateV2[] = R"sql(
ALTER TABLE records ADD COLUMN family TEXT NOT NULL DEFAULT '';
CREATE INDEX records_family ON records(family);
)sql";

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path, bool read_only) {
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_NOMUTEX | (read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE));
  int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("open ", path, ": ", msg));
  }
  std::unique_ptr<Store> store(new Store(db));
  sqlite3_busy_timeout(db, 10000);
  if (!read_only) {
    // WAL + FULL: commits are durable once Commit() returns, and readers do
    // not block the single writer.
    if (auto s = store->Exec("PRAGMA journal_mode=WAL"); !s.ok()) return s;
    if (auto s = store->Exec("PRAGMA synchronous=FULL"); !s.ok()) return s;
    if (auto s = store->Migrate(); !s.ok()) return s;
  } else {
    auto version = store->ReadSchemaVersion();
    if (!version.ok()) return version.status();
    if (*version < kOldestSchemaVersion || *version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": not an ossgate provenance database of schema ",
                                                        kOldestSchemaVersion, "..", kSchemaVersion, " (its user_version is ",
                                                        *version, ")"));
    }
    store->schema_version_ = *version;
  }
  store->PrepareSql();
  return store;
}

Store::~Store() {
  for (auto& [sql, stmt] : stmts_) sqlite3_finalize(stmt);
  sqlite3_close(db_);
}

absl::Status Store::Error(const char* what) const {
  return absl::InternalError(absl::StrCat("sqlite ", what, ": ", sqlite3_errmsg(db_)));
}

absl::Status Store::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    return absl::InternalError(absl::StrCat("sqlite: ", msg));
  }
  return absl::OkStatus();
}

absl::Status Store::ExecForTest(const std::string& sql) { return Exec(sql.c_str()); }

absl::StatusOr<int> Store::ReadSchemaVersion() {
  auto v = Prepare("PRAGMA user_version");
  if (!v.ok()) return v.status();
  StmtScope scope(*v);
  if (sqlite3_step(*v) != SQLITE_ROW) return Error("user_version");
  return sqlite3_column_int(*v, 0);
}

absl::Status Store::Migrate() {
  auto read = ReadSchemaVersion();
  if (!read.ok()) return read.status();
  if (*read == kSchemaVersion) {
    schema_version_ = kSchemaVersion;
    return absl::OkStatus();
  }
  // Step by step from the stored version (0: a new, empty database), all in
  // one transaction: a crash leaves the old version intact. The version is
  // read again inside it, in case another connection migrated meanwhile.
  if (auto s = Exec("BEGIN IMMEDIATE"); !s.ok()) return s;
  read = ReadSchemaVersion();
  if (!read.ok()) {
    Rollback();
    return read.status();
  }
  const int version = *read;
  if (version >= kSchemaVersion) {
    Rollback();
    if (version > kSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "database schema version ", version, " is newer than this binary's (", kSchemaVersion, ")"));
    }
    schema_version_ = kSchemaVersion;
    return absl::OkStatus();
  }
  absl::Status s;
  if (version < 1) s = Exec(kSchemaV1);
  if (s.ok() && version < 2) s = Exec(kMigrateV2);
  if (s.ok()) s = Exec(absl::StrCat("PRAGMA user_version=", kSchemaVersion).c_str());
  if (s.ok()) s = Exec("COMMIT");
  if (!s.ok()) {
    Rollback();
    return s;
  }
  schema_version_ = kSchemaVersion;
  return absl::OkStatus();
}

void Store::PrepareSql() {
  record_columns_ = schema_version_ >= 2 ? kRecordColumns : kRecordColumnsV1;
  get_record_sql_ = absl::StrCat("SELECT ", record_columns_, " FROM records WHERE idx = ?1");
  scan_records_sql_ = absl::StrCat("SELECT ", record_columns_, " FROM records WHERE idx >= ?1 ORDER BY idx");
  scan_registry_sql_ = absl::StrCat("SELECT ", record_columns_,
                                    " FROM records WHERE kind = 'registry_change' AND verdict = 'accepted' ORDER BY idx");
}

absl::StatusOr<sqlite3_stmt*> Store::Prepare(const char* sql) {
  for (auto& [k, stmt] : stmts_) {
    if (k == sql) return stmt;
  }
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK) {
    return Error("prepare");
  }
  stmts_.emplace_back(sql, stmt);
  return stmt;
}

absl::StatusOr<std::optional<std::string>> Store::GetMeta(const std::string& key) {
  auto st = Prepare("SELECT value FROM meta WHERE key = ?1");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindText(*st, 1, key);
  int rc = sqlite3_step(*st);
  if (rc == SQLITE_ROW) return std::optional<std::string>(ColumnString(*st, 0));
  if (rc == SQLITE_DONE) return std::optional<std::string>();
  return Error("get meta");
}

absl::Status Store::PutMeta(const std::string& key, const std::string& value) {
  auto st = Prepare("INSERT OR REPLACE INTO meta(key, value) VALUES(?1, ?2)");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindText(*st, 1, key);
  BindText(*st, 2, value);
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("put meta");
  return absl::OkStatus();
}

absl::Status Store::Begin() { return Exec("BEGIN IMMEDIATE"); }
absl::Status Store::Commit() { return Exec("COMMIT"); }
void Store::Rollback() { sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr); }

absl::Status Store::InsertRecord(uint64_t index, const std::string& bytes, const Hash& leaf,
                                 const AuditRecord& r) {
  auto st = Prepare(
      "INSERT INTO records(idx, record, leaf_hash, time_us, kind, verdict, caller, sha256, source, family) "
      "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindU64(*st, 1, index);
  BindBlob(*st, 2, bytes.data(), bytes.size());
  BindBlob(*st, 3, leaf.data(), leaf.size());
  BindU64(*st, 4, r.time_us);
  BindText(*st, 5, std::string(RecordKindName(r.kind)));
  BindText(*st, 6, std::string(VerdictName(r.verdict)));
  BindText(*st, 7, r.caller);
  BindText(*st, 8, r.SubjectSha256());
  BindText(*st, 9, r.SubjectSource());
  BindText(*st, 10, r.family);
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("insert record");
  return absl::OkStatus();
}

absl::Status Store::InsertNode(int level, uint64_t index, const Hash& hash) {
  auto st = Prepare("INSERT INTO tree_nodes(level, idx, hash) VALUES(?1, ?2, ?3)");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  sqlite3_bind_int(*st, 1, level);
  BindU64(*st, 2, index);
  BindBlob(*st, 3, hash.data(), hash.size());
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("insert node");
  return absl::OkStatus();
}

absl::Status Store::InsertCheckpoint(const StoredCheckpoint& c) {
  auto st = Prepare("INSERT INTO checkpoints(tree_size, root_hash, note, time_us) VALUES(?1, ?2, ?3, ?4)");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindU64(*st, 1, c.tree_size);
  BindBlob(*st, 2, c.root.data(), c.root.size());
  BindText(*st, 3, c.note);
  BindU64(*st, 4, c.time_us);
  if (sqlite3_step(*st) != SQLITE_DONE) return Error("insert checkpoint");
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Store::RecordCount() {
  // Indices are dense from 0: a gap means records were deleted.
  auto st = Prepare("SELECT COUNT(*), COALESCE(MAX(idx) + 1, 0) FROM records");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  if (sqlite3_step(*st) != SQLITE_ROW) return Error("count");
  uint64_t count = ColumnU64(*st, 0);
  if (count != ColumnU64(*st, 1)) {
    return absl::DataLossError(absl::StrCat("audit log has ", count, " records but indices run to ",
                                            ColumnU64(*st, 1), ": records were deleted"));
  }
  return count;
}

absl::StatusOr<std::optional<StoredRecord>> Store::GetRecord(uint64_t index) {
  auto st = Prepare(get_record_sql_.c_str());
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindU64(*st, 1, index);
  int rc = sqlite3_step(*st);
  if (rc == SQLITE_ROW) return std::optional<StoredRecord>(ReadRecordRow(*st));
  if (rc == SQLITE_DONE) return std::optional<StoredRecord>();
  return Error("get record");
}

absl::Status Store::ScanRecords(uint64_t begin, const std::function<bool(const StoredRecord&)>& fn) {
  auto st = Prepare(scan_records_sql_.c_str());
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindU64(*st, 1, begin);
  for (;;) {
    int rc = sqlite3_step(*st);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return Error("scan");
    if (!fn(ReadRecordRow(*st))) return absl::OkStatus();
  }
}

absl::Status Store::ScanAppliedRegistryChanges(
    const std::function<absl::Status(const StoredRecord&)>& fn) {
  auto st = Prepare(scan_registry_sql_.c_str());
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  for (;;) {
    int rc = sqlite3_step(*st);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return Error("scan registry");
    if (auto s = fn(ReadRecordRow(*st)); !s.ok()) return s;
  }
}

absl::StatusOr<std::vector<StoredRecord>> Store::Query(const RecordFilter& f,
                                                       std::optional<uint64_t> after, int limit) {
  // Built per call (the filter shape varies); every value is bound, never
  // spliced into the SQL text.
  std::string sql = absl::StrCat("SELECT ", record_columns_, " FROM records WHERE idx >= ?1");
  if (f.start_time_us) sql += " AND time_us >= ?2";
  if (f.end_time_us) sql += " AND time_us < ?3";
  if (!f.sha256.empty()) sql += " AND sha256 = ?4";
  if (!f.source.empty()) sql += " AND source = ?5";
  if (!f.verdict.empty()) sql += " AND verdict = ?6";
  if (!f.caller.empty()) sql += " AND caller = ?7";
  if (!f.kind.empty()) sql += " AND kind = ?8";
  // Schema 1 has no family column, and none of its records a family.
  if (!f.family.empty()) sql += schema_version_ >= 2 ? " AND family = ?10" : " AND 0";
  sql += " ORDER BY idx LIMIT ?9";
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return Error("prepare query");
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> guard(st, sqlite3_finalize);
  BindU64(st, 1, after ? *after + 1 : 0);
  if (f.start_time_us) BindU64(st, 2, *f.start_time_us);
  if (f.end_time_us) BindU64(st, 3, *f.end_time_us);
  if (!f.sha256.empty()) BindText(st, 4, f.sha256);
  if (!f.source.empty()) BindText(st, 5, f.source);
  if (!f.verdict.empty()) BindText(st, 6, f.verdict);
  if (!f.caller.empty()) BindText(st, 7, f.caller);
  if (!f.kind.empty()) BindText(st, 8, f.kind);
  if (!f.family.empty() && schema_version_ >= 2) BindText(st, 10, f.family);
  sqlite3_bind_int(st, 9, limit);
  std::vector<StoredRecord> out;
  for (;;) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) return out;
    if (rc != SQLITE_ROW) return Error("query");
    out.push_back(ReadRecordRow(st));
  }
}

absl::StatusOr<Hash> Store::Node(int level, uint64_t index) {
  sqlite3_stmt* raw;
  if (level == 0) {
    auto st = Prepare("SELECT leaf_hash FROM records WHERE idx = ?1");
    if (!st.ok()) return st.status();
    raw = *st;
  } else {
    auto st = Prepare("SELECT hash FROM tree_nodes WHERE level = ?2 AND idx = ?1");
    if (!st.ok()) return st.status();
    raw = *st;
    sqlite3_bind_int(raw, 2, level);
  }
  StmtScope scope(raw);
  BindU64(raw, 1, index);
  int rc = sqlite3_step(raw);
  if (rc == SQLITE_ROW && sqlite3_column_bytes(raw, 0) == 32) return ColumnHash(raw, 0);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    return absl::DataLossError(absl::StrCat("tree node (", level, ", ", index, ") missing or malformed"));
  }
  return Error("node");
}

absl::StatusOr<std::optional<StoredCheckpoint>> Store::LatestCheckpoint() {
  auto st = Prepare("SELECT tree_size, root_hash, note, time_us FROM checkpoints ORDER BY tree_size DESC LIMIT 1");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  int rc = sqlite3_step(*st);
  if (rc == SQLITE_ROW) return std::optional<StoredCheckpoint>(ReadCheckpointRow(*st));
  if (rc == SQLITE_DONE) return std::optional<StoredCheckpoint>();
  return Error("latest checkpoint");
}

absl::StatusOr<std::optional<StoredCheckpoint>> Store::CheckpointAt(uint64_t tree_size) {
  auto st = Prepare("SELECT tree_size, root_hash, note, time_us FROM checkpoints WHERE tree_size = ?1");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  BindU64(*st, 1, tree_size);
  int rc = sqlite3_step(*st);
  if (rc == SQLITE_ROW) return std::optional<StoredCheckpoint>(ReadCheckpointRow(*st));
  if (rc == SQLITE_DONE) return std::optional<StoredCheckpoint>();
  return Error("checkpoint");
}

absl::Status Store::ScanCheckpoints(const std::function<bool(const StoredCheckpoint&)>& fn) {
  auto st = Prepare("SELECT tree_size, root_hash, note, time_us FROM checkpoints ORDER BY tree_size");
  if (!st.ok()) return st.status();
  StmtScope scope(*st);
  for (;;) {
    int rc = sqlite3_step(*st);
    if (rc == SQLITE_DONE) return absl::OkStatus();
    if (rc != SQLITE_ROW) return Error("scan checkpoints");
    if (!fn(ReadCheckpointRow(*st))) return absl::OkStatus();
  }
}

}  // namespace ossgate::provenance
