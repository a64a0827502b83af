// The libpq layer under PostgresStateStore: connections set up for the store,
// typed parameters, results, rows and transactions, and SQLSTATE -> absl codes.
// Internal to icos_store (postgres_state_store.cc is its one user).
#ifndef ICOS_STORE_POSTGRES_CONNECTION_H_
#define ICOS_STORE_POSTGRES_CONNECTION_H_

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "store/postgres_state_store.h"
#include "store/sql_queries.h"

namespace icos::store::pg_internal {

// The absl code for a PostgreSQL SQLSTATE (class = first two characters).
inline absl::StatusCode CodeFor(absl::string_view sqlstate) {
  const absl::string_view cls = sqlstate.substr(0, 2);
  if (sqlstate.empty() || cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03") {
    return absl::StatusCode::kUnavailable;  // no or lost connection, server shutting down or starting
  }
  if (cls == "28" || sqlstate == "42501") return absl::StatusCode::kPermissionDenied;
  if (cls == "53") return absl::StatusCode::kResourceExhausted;
  if (cls == "40") return absl::StatusCode::kAborted;  // serialization failure, deadlock
  if (cls == "23" || cls == "25") return absl::StatusCode::kFailedPrecondition;
  if (cls == "22") return absl::StatusCode::kInvalidArgument;
  if (sqlstate == "XX001" || sqlstate == "XX002") return absl::StatusCode::kDataLoss;
  if (sqlstate == "57014") return absl::StatusCode::kDeadlineExceeded;
  return absl::StatusCode::kInternal;
}

// libpq's messages end in a newline and may span lines; one line reads better.
inline std::string OneLine(absl::string_view message) {
  std::string out(absl::StripTrailingAsciiWhitespace(message));
  std::replace(out.begin(), out.end(), '\n', ' ');
  std::replace(out.begin(), out.end(), '\t', ' ');
  return out;
}

// Where `conninfo` points, for error messages: host, port, database and user,
// with any password shown as "****". Empty when conninfo does not parse.
inline std::string DescribeTarget(const std::string& conninfo) {
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(conninfo.c_str(), &error);
  PQfreemem(error);
  if (options == nullptr) return "";
  std::vector<std::string> parts;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || o->val[0] == '\0') continue;
    const absl::string_view key = o->keyword;
    if (key == "password") {
      parts.push_back("password=****");
    } else if (key == "host" || key == "hostaddr" || key == "port" || key == "dbname" || key == "user") {
      parts.push_back(absl::StrCat(key, "=", o->val));
    }
  }
  PQconninfoFree(options);
  return parts.empty() ? "the default server (no host, port or dbname given)" : absl::StrJoin(parts, " ");
}

// Statement parameters, all sent as text (PostgreSQL casts them to the column
// types). A NUL byte cannot be sent as text nor stored in TEXT, so a value
// holding one is refused rather than silently truncated.
class Params {
 public:
  Params& Int(int64_t value) { return Add(absl::StrCat(value)); }
  Params& Bool(bool value) { return Add(value ? "true" : "false"); }
  Params& Text(absl::string_view value) {
    if (value.find('\0') != absl::string_view::npos && status_.ok()) {
      status_ = absl::InvalidArgumentError("a text value holds a NUL byte, which PostgreSQL TEXT cannot store");
    }
    return Add(std::string(value));
  }
  Params& Null() {
    values_.emplace_back();
    null_.push_back(true);
    return *this;
  }

  const absl::Status& status() const { return status_; }
  int size() const { return static_cast<int>(values_.size()); }
  // Pointers into this object: valid while it lives and is not added to.
  std::vector<const char*> Pointers() const {
    std::vector<const char*> out;
    for (size_t i = 0; i < values_.size(); ++i) out.push_back(null_[i] ? nullptr : values_[i].c_str());
    return out;
  }

 private:
  Params& Add(std::string value) {
    values_.push_back(std::move(value));
    null_.push_back(false);
    return *this;
  }

  std::vector<std::string> values_;
  std::vector<bool> null_;
  absl::Status status_;
};

// An owned PGresult of a successful statement, read by row and column. Values
// are text; a BIGINT or INTEGER column that does not parse (it cannot, short of
// a broken server) marks the result malformed, which readers report as DataLoss.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result, &PQclear) {}

  int rows() const { return PQntuples(result_.get()); }
  std::string Text(int row, int col) const {
    return std::string(PQgetvalue(result_.get(), row, col), PQgetlength(result_.get(), row, col));
  }
  int64_t Int(int row, int col) const {
    int64_t value = 0;
    if (!absl::SimpleAtoi(PQgetvalue(result_.get(), row, col), &value)) malformed_ = true;
    return value;
  }
  bool Bool(int row, int col) const { return PQgetvalue(result_.get(), row, col)[0] == 't'; }
  // Rows an INSERT/UPDATE/DELETE touched.
  int64_t Affected() const {
    int64_t n = 0;
    return absl::SimpleAtoi(PQcmdTuples(result_.get()), &n) ? n : 0;
  }
  std::string CommandStatus() const { return PQcmdStatus(result_.get()); }
  bool malformed() const { return malformed_; }

 private:
  std::unique_ptr<PGresult, decltype(&PQclear)> result_;
  mutable bool malformed_ = false;
};

// One row of a Result, so the record readers look like SqliteStateStore's.
struct Row {
  const Result& result;
  int row;
  std::string Text(int col) const { return result.Text(row, col); }
  int64_t Int(int col) const { return result.Int(row, col); }
  int32_t Int32(int col) const { return static_cast<int32_t>(result.Int(row, col)); }
  bool Bool(int col) const { return result.Bool(row, col); }
};

// A libpq connection set up for the store: UTF-8, synchronous commits, the
// store's schema first on the search path, server notices dropped (CREATE ...
// IF NOT EXISTS would print them to stderr). Not thread-safe: one thread uses
// it at a time (the store's pool sees to it).
class Connection {
 public:
  // fail_fast: the connection notices a vanished server (or is noticed
  // gone by the server) within seconds, not the kernel's two hours idle or
  // fifteen minutes of retransmissions: TCP keepalives and a user timeout on
  // both ends. For every connection: the leadership session, whose end
  // hands the lead on, and the pool's, where a write stuck on a dead network
  // would keep a cut-off leader from standing down (e2e.netns_ha).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const PostgresOptions& options, bool fail_fast = true) {
    const std::string target = DescribeTarget(options.conninfo);
    if (options.conninfo.empty()) {
      return absl::InvalidArgumentError(
          "open PostgreSQL store: PostgresOptions.conninfo is empty; give e.g. postgresql:///icos?host=/run/pg");
    }
    if (target.empty()) {
      char* error = nullptr;
      PQconninfoOption* parsed = PQconninfoParse(options.conninfo.c_str(), &error);
      PQconninfoFree(parsed);
      std::string message = error != nullptr ? OneLine(error) : "cannot parse it";
      PQfreemem(error);
      return absl::InvalidArgumentError(absl::StrCat("open PostgreSQL store: bad connection string: ", message));
    }
    // Later keywords override earlier ones and the expanded dbname sits in the
    // middle: the user's string may change the timeout and application name,
    // never the encoding the reader code relies on.
    const std::string timeout = absl::StrCat(std::max(1, options.connect_timeout_s));
    std::vector<const char*> keys = {"connect_timeout", "application_name", "dbname", "client_encoding"};
    std::vector<const char*> values = {timeout.c_str(), "icos", options.conninfo.c_str(), "UTF8"};
    if (fail_fast) {
      for (const auto& [key, value] :
           {std::pair{"keepalives", "1"}, std::pair{"keepalives_idle", "5"}, std::pair{"keepalives_interval", "2"},
            std::pair{"keepalives_count", "3"}, std::pair{"tcp_user_timeout", "10000"}}) {
        keys.push_back(key);
        values.push_back(value);
      }
    }
    keys.push_back(nullptr);
    values.push_back(nullptr);
    PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
    if (conn == nullptr) return absl::ResourceExhaustedError("open PostgreSQL store: libpq is out of memory");
    auto owned = std::unique_ptr<Connection>(new Connection(conn));
    if (PQstatus(conn) != CONNECTION_OK) {
      const std::string message = OneLine(PQerrorMessage(conn));
      const bool auth = PQconnectionNeedsPassword(conn) || absl::StrContains(message, "authentication failed") ||
                        absl::StrContains(message, "no pg_hba.conf entry") ||
                        absl::StrContains(message, "password authentication") ||
                        (absl::StrContains(message, "role \"") && absl::StrContains(message, "does not exist"));
      return absl::Status(auth ? absl::StatusCode::kPermissionDenied : absl::StatusCode::kUnavailable,
                          absl::StrCat("cannot connect to PostgreSQL at ", target, ": ", message));
    }
    PQsetNoticeProcessor(
        conn, [](void*, const char*) {}, nullptr);
    // Durable on return whatever the server or role default: a commit waits
    // for its WAL flush. Values go in as parameters, the schema name too.
    Params params;
    params.Text(options.schema);
    absl::StatusOr<Result> set = owned->Exec(
        "SELECT set_config('synchronous_commit', 'on', false), "
        "CASE WHEN $1 = '' THEN NULL ELSE set_config('search_path', quote_ident($1), false) END",
        params, absl::StrCat("set up connection to ", target));
    if (!set.ok()) return set.status();
    if (fail_fast) {
      absl::StatusOr<Result> keepalive = owned->Exec(
          "SELECT set_config('tcp_keepalives_idle', '5', false), set_config('tcp_keepalives_interval', '2', false), "
          "set_config('tcp_keepalives_count', '3', false), set_config('tcp_user_timeout', '10000', false)",
          Params(), absl::StrCat("set up connection to ", target));
      if (!keepalive.ok()) return keepalive.status();
    }
    return owned;
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn_); }

  // The server or network dropped the connection.
  bool Broken() const { return PQstatus(conn_) == CONNECTION_BAD; }
  // Statements that succeeded since the last reset: 0 after a failure means
  // the server ran nothing of the caller's.
  void ResetStatementCount() { statement_count_ = 0; }
  int statement_count() const { return statement_count_; }

  // Connected and outside any transaction: fit to go back to the pool.
  bool Reusable() const { return PQstatus(conn_) == CONNECTION_OK && PQtransactionStatus(conn_) == PQTRANS_IDLE; }

  // Runs one parameterised statement. The SQLSTATE of a failure is kept in
  // last_sqlstate() so callers can tell, e.g., a foreign key violation apart.
  absl::StatusOr<Result> Exec(const char* sql, const Params& params, absl::string_view what) {
    last_sqlstate_.clear();
    if (!params.status().ok())
      return absl::Status(params.status().code(), absl::StrCat(what, ": ", params.status().message()));
    const std::vector<const char*> values = params.Pointers();
    return Check(PQexecParams(conn_, sql, params.size(), nullptr, values.data(), nullptr, nullptr, /*resultFormat=*/0),
                 what);
  }
  absl::StatusOr<Result> Exec(const std::string& sql, const Params& params, absl::string_view what) {
    return Exec(sql.c_str(), params, what);
  }
  // Runs a shared query (sql_queries.h) with its parameters.
  absl::StatusOr<Result> Exec(const sql::Query& query, absl::string_view what) {
    Params params;
    query.BindTo(params);
    return Exec(query.sql(), params, what);
  }
  // Runs statements without parameters (may be several, separated by ';').
  absl::Status ExecScript(const char* sql, absl::string_view what) {
    last_sqlstate_.clear();
    return Check(PQexec(conn_, sql), what).status();
  }

  const std::string& last_sqlstate() const { return last_sqlstate_; }
  PGconn* get() const { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}

  absl::StatusOr<Result> Check(PGresult* raw, absl::string_view what) {
    Result result(raw);
    const ExecStatusType status = raw != nullptr ? PQresultStatus(raw) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      ++statement_count_;
      return result;
    }
    const char* sqlstate = raw != nullptr ? PQresultErrorField(raw, PG_DIAG_SQLSTATE) : nullptr;
    last_sqlstate_ = sqlstate != nullptr ? sqlstate : "";
    const char* message = raw != nullptr ? PQresultErrorMessage(raw) : "";
    if (message == nullptr || message[0] == '\0') message = PQerrorMessage(conn_);
    // No SQLSTATE means libpq itself failed: the connection is gone.
    absl::StatusCode code = CodeFor(last_sqlstate_);
    if (PQstatus(conn_) == CONNECTION_BAD) code = absl::StatusCode::kUnavailable;
    return absl::Status(code, absl::StrCat(what, ": ", OneLine(message)));
  }

  PGconn* const conn_;
  std::string last_sqlstate_;
  int statement_count_ = 0;
};

// BEGIN .. COMMIT; rolls back unless committed.
class Transaction {
 public:
  Transaction(Connection& conn, absl::string_view what) : conn_(conn), what_(what) {
    status_ = conn_.ExecScript("BEGIN", what_);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    if (!committed_ && PQtransactionStatus(conn_.get()) != PQTRANS_IDLE) {
      conn_.ExecScript("ROLLBACK", what_).IgnoreError();
    }
  }
  // The outcome of BEGIN.
  const absl::Status& status() const { return status_; }
  absl::Status Commit() {
    absl::StatusOr<Result> result = conn_.Exec("COMMIT", Params(), what_);
    if (!result.ok()) return result.status();
    // COMMIT of a transaction that already failed answers ROLLBACK, not an error.
    if (result->CommandStatus() != "COMMIT") {
      return absl::AbortedError(absl::StrCat(what_, ": transaction was rolled back"));
    }
    committed_ = true;
    return absl::OkStatus();
  }

 private:
  Connection& conn_;
  const std::string what_;  // owned: callers may pass a temporary
  absl::Status status_;
  bool committed_ = false;
};

}  // namespace icos::store::pg_internal

#endif  // ICOS_STORE_POSTGRES_CONNECTION_H_
