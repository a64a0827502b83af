// The SQLite layer under SqliteStateStore: a connection with its cached
// prepared statements, one use of a statement (bind, step, read, reset) and
// transactions, and SQLite result codes -> absl codes. Internal to icos_store
// (sqlite_state_store.cc is its one user).
#ifndef ICOS_STORE_SQLITE_CONNECTION_H_
#define ICOS_STORE_SQLITE_CONNECTION_H_

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/sql_queries.h"
#include "store/sqlite_state_store.h"

namespace icos::store::sqlite_internal {

inline absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {  // the primary code of an extended one
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
      return absl::StatusCode::kUnavailable;
    case SQLITE_NOTADB:
    case SQLITE_CANTOPEN:
    case SQLITE_CONSTRAINT:
      return absl::StatusCode::kFailedPrecondition;
    case SQLITE_CORRUPT:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
    case SQLITE_NOMEM:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

// "<what>: <SQLite's message>", e.g. "insert job: database is locked".
inline absl::Status SqliteError(int rc, sqlite3* db, absl::string_view what) {
  const char* message = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return absl::Status(CodeFor(rc), absl::StrCat(what, ": ", message));
}

// A sqlite3 connection and the statements prepared on it. Not thread-safe:
// one thread uses it at a time (the store's mutexes and reader pool see to it).
class Connection {
 public:
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& path, int flags, int busy_timeout_ms) {
    sqlite3* db = nullptr;
    // NOMUTEX: the store serialises use of each connection itself.
    const int rc = sqlite3_open_v2(path.c_str(), &db, flags | SQLITE_OPEN_NOMUTEX, nullptr);
    if (rc != SQLITE_OK) {
      absl::Status status = SqliteError(rc, db, absl::StrCat("open ", path));
      sqlite3_close_v2(db);  // a handle is returned even on failure
      return status;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, busy_timeout_ms);
    return std::unique_ptr<Connection>(new Connection(db));
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  ~Connection() {
    for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
    sqlite3_close_v2(db_);
  }

  sqlite3* db() const { return db_; }

  // The statement for `sql`, prepared once per connection and reused; callers
  // reset it after use (Stmt does).
  absl::StatusOr<sqlite3_stmt*> Prepare(const std::string& sql, absl::string_view what) {
    auto it = statements_.find(sql);
    if (it != statements_.end()) return it->second;
    sqlite3_stmt* stmt = nullptr;
    const int rc =
        sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, what);
    statements_.emplace(sql, stmt);
    return stmt;
  }

  // Runs one or more statements whose rows, if any, are not needed.
  absl::Status Exec(const char* sql, absl::string_view what) {
    const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return SqliteError(rc, db_, what);
    return absl::OkStatus();
  }

 private:
  explicit Connection(sqlite3* db) : db_(db) {}

  sqlite3* const db_;
  absl::flat_hash_map<std::string, sqlite3_stmt*> statements_;
};

// One use of a cached prepared statement: binds parameters in order, steps,
// reads columns, and resets the statement when it goes out of scope. A
// prepare or bind failure is kept and reported by the next Step.
class Stmt {
 public:
  Stmt(Connection& conn, const std::string& sql, absl::string_view what) : db_(conn.db()), what_(what) {
    absl::StatusOr<sqlite3_stmt*> stmt = conn.Prepare(sql, what);
    if (stmt.ok()) {
      stmt_ = *stmt;
    } else {
      status_ = stmt.status();
    }
  }
  // A shared query (sql_queries.h), prepared and its parameters bound.
  Stmt(Connection& conn, const sql::Query& query, absl::string_view what) : Stmt(conn, query.sql(), what) {
    query.BindTo(*this);
  }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() {
    // Reset also ends the statement's implicit read transaction; a statement
    // left mid-rows would pin its WAL snapshot and stall checkpoints.
    if (stmt_ != nullptr) {
      sqlite3_reset(stmt_);
      sqlite3_clear_bindings(stmt_);
    }
  }

  Stmt& Int(int64_t value) {
    if (stmt_ != nullptr) Check(sqlite3_bind_int64(stmt_, ++index_, value));
    return *this;
  }
  Stmt& Bool(bool value) { return Int(value ? 1 : 0); }
  Stmt& Null() {
    if (stmt_ != nullptr) Check(sqlite3_bind_null(stmt_, ++index_));
    return *this;
  }
  Stmt& Text(absl::string_view value) {
    // A default string_view has a null data(), which SQLite would bind as NULL.
    const char* data = value.data() != nullptr ? value.data() : "";
    if (stmt_ != nullptr) {
      Check(sqlite3_bind_text64(stmt_, ++index_, data, value.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
    }
    return *this;
  }

  // True when a row is ready to read, false when the statement is done.
  absl::StatusOr<bool> Step() {
    if (!status_.ok()) return status_;
    rc_ = sqlite3_step(stmt_);
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return SqliteError(rc_, db_, what_);
  }
  // Steps once for a statement whose rows, if any, are not needed.
  absl::Status Run() { return Step().status(); }
  // The result code of the last Step (extended), to tell errors apart.
  int rc() const { return rc_; }

  int64_t ColumnInt(int i) const { return sqlite3_column_int64(stmt_, i); }
  int32_t ColumnInt32(int i) const { return static_cast<int32_t>(sqlite3_column_int64(stmt_, i)); }
  std::string ColumnText(int i) const {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    // column_bytes after column_text: the length of the text just returned.
    return text == nullptr ? std::string() : std::string(text, sqlite3_column_bytes(stmt_, i));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && status_.ok()) status_ = SqliteError(rc, db_, what_);
  }

  sqlite3* const db_;
  const std::string what_;  // owned: callers may pass a temporary
  sqlite3_stmt* stmt_ = nullptr;
  absl::Status status_;
  int index_ = 0;
  int rc_ = SQLITE_OK;
};

// BEGIN IMMEDIATE .. COMMIT; rolls back unless committed. IMMEDIATE takes the
// write lock up front, so a busy database fails at BEGIN (after busy_timeout)
// rather than midway.
class Transaction {
 public:
  Transaction(Connection& conn, absl::string_view what) : conn_(conn), what_(what) {
    status_ = conn_.Exec("BEGIN IMMEDIATE", what_);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // A failed statement may already have ended the transaction (autocommit).
    if (!committed_ && sqlite3_get_autocommit(conn_.db()) == 0) {
      sqlite3_exec(conn_.db(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  // The outcome of BEGIN.
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    absl::Status status = conn_.Exec("COMMIT", what_);
    committed_ = status.ok();
    return status;
  }

 private:
  Connection& conn_;
  const std::string what_;  // owned: callers may pass a temporary
  absl::Status status_;
  bool committed_ = false;
};
}  // namespace icos::store::sqlite_internal

#endif  // ICOS_STORE_SQLITE_CONNECTION_H_
