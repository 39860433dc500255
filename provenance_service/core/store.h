// SQLite storage of the audit log (records, Merkle tree nodes, signed
// checkpoints) and metadata. One Store is one database connection.
//
// Schema (version 2, PRAGMA user_version):
//   meta(key TEXT PRIMARY KEY, value TEXT)      log origin, verifier key, ...
//   records(idx INTEGER PRIMARY KEY, record BLOB, leaf_hash BLOB,
//           time_us, kind, verdict, caller, sha256, source, family)
//       record = canonical bytes (audit_record.h); the other columns are
//       derived from it for queries and checked by the log verifier.
//   tree_nodes(level, idx, hash) WITHOUT ROWID   perfect subtrees, level >= 1
//   checkpoints(tree_size INTEGER PRIMARY KEY, root_hash BLOB, note TEXT, time_us)
//
// Version 1 (before model families) had no `family` column. Opening such a
// database for writing migrates it in one transaction: the column is added
// with '' for every existing row, which is what their records say (they
// have no family field), so no record, hash or checkpoint changes. Opened
// read-only (provctl audit verify) it is read as it is, family ''.
//
// The database runs in WAL mode with synchronous=FULL: a committed
// transaction is on stable storage when Commit returns.
//
// Thread-safety: none. A Store must be used by one thread at a time (the
// ledger has one writer Store and a small pool of reader Stores).
#ifndef OSSGATE_PROVENANCE_SERVICE_CORE_STORE_H_
#define OSSGATE_PROVENANCE_SERVICE_CORE_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "provenance_service/core/audit_record.h"
#include "provenance_service/core/merkle.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ossgate::provenance {

inline constexpr int kSchemaVersion = 2;
// The oldest schema Open still reads (and, unless read_only, migrates).
inline constexpr int kOldestSchemaVersion = 1;

struct StoredRecord {
  uint64_t index = 0;
  std::string record;  // canonical bytes
  Hash leaf_hash{};
  // Derived columns as stored (compared with the record by the verifier).
  uint64_t time_us = 0;
  std::string kind;
  std::string verdict;
  std::string caller;
  std::string sha256;
  std::string source;
  std::string family;
};

struct StoredCheckpoint {
  uint64_t tree_size = 0;
  Hash root{};
  std::string note;
  uint64_t time_us = 0;
};

struct RecordFilter {
  std::optional<uint64_t> start_time_us;  // inclusive
  std::optional<uint64_t> end_time_us;    // exclusive
  std::string sha256;
  std::string source;
  std::string verdict;  // "accepted"/"rejected" or empty
  std::string caller;
  std::string kind;     // "verify_model"/"registry_change" or empty
  std::string family;   // exact model family as recorded, or empty
};

class Store {
 public:
  // Opens (creating if needed, unless read_only) and migrates the schema
  // (unless read_only). FAILED_PRECONDITION if the database has a newer
  // schema version, or is no ossgate database.
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path, bool read_only = false);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // ---- metadata ----
  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key);
  absl::Status PutMeta(const std::string& key, const std::string& value);

  // ---- writes (inside Begin/Commit) ----
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();
  absl::Status InsertRecord(uint64_t index, const std::string& bytes, const Hash& leaf,
                            const AuditRecord& record);
  absl::Status InsertNode(int level, uint64_t index, const Hash& hash);
  absl::Status InsertCheckpoint(const StoredCheckpoint& checkpoint);

  // ---- reads ----
  // Number of records; DATA_LOSS if indices are not dense from 0.
  absl::StatusOr<uint64_t> RecordCount();
  absl::StatusOr<std::optional<StoredRecord>> GetRecord(uint64_t index);
  // Calls fn for records with index >= begin, in order, until fn returns false.
  absl::Status ScanRecords(uint64_t begin, const std::function<bool(const StoredRecord&)>& fn);
  // Registry-change records that were applied, in log order.
  absl::Status ScanAppliedRegistryChanges(const std::function<absl::Status(const StoredRecord&)>& fn);
  // Up to `limit` records with index > after (or >= 0 when after is empty)
  // matching the filter, in log order.
  absl::StatusOr<std::vector<StoredRecord>> Query(const RecordFilter& filter,
                                                  std::optional<uint64_t> after, int limit);
  // Perfect subtree hash; level 0 reads the record's leaf hash.
  absl::StatusOr<Hash> Node(int level, uint64_t index);
  absl::StatusOr<std::optional<StoredCheckpoint>> LatestCheckpoint();
  absl::StatusOr<std::optional<StoredCheckpoint>> CheckpointAt(uint64_t tree_size);
  absl::Status ScanCheckpoints(const std::function<bool(const StoredCheckpoint&)>& fn);

  // The schema version as opened (after migration unless read_only).
  int schema_version() const { return schema_version_; }

  // Test hook for tamper tests: runs arbitrary SQL.
  absl::Status ExecForTest(const std::string& sql);

 private:
  explicit Store(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql);
  absl::Status Migrate();
  absl::StatusOr<int> ReadSchemaVersion();
  // Builds the SELECTs for the schema version opened.
  void PrepareSql();
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql);
  absl::Status Error(const char* what) const;

  sqlite3* db_;
  int schema_version_ = 0;
  // Record SELECTs for this schema version (cached by their text's address).
  std::string record_columns_;
  std::string get_record_sql_;
  std::string scan_records_sql_;
  std::string scan_registry_sql_;
  // Cached prepared statements, keyed by SQL text pointer.
  std::vector<std::pair<const char*, sqlite3_stmt*>> stmts_;
};

}  // namespace ossgate::provenance

#endif  // OSSGATE_PROVENANCE_SERVICE_CORE_STORE_H_
