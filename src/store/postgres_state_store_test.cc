// PostgresStateStore against a real PostgreSQL server: the conformance suite
// plus what only a server backend has (connection errors, schemas, pooling).
//
// The test starts its own server: a global environment runs initdb in a
// temporary directory and pg_ctl with no TCP listener, only a unix socket in
// that directory, so it never meets another PostgreSQL on the machine. Each
// test process (ctest runs one test per process) gets its own server, which
// costs about a second. If the server cannot start every test fails, saying
// why; none is skipped.
#include "store/postgres_state_store.h"

#include <libpq-fe.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/records.h"
#include "store/state_store.h"
#include "store/state_store_conformance.h"

namespace icos::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One private PostgreSQL server for this test process.
class PostgresServer : public ::testing::Environment {
 public:
  static PostgresServer& Get() {
    static PostgresServer* server = new PostgresServer;
    return *server;
  }

  void SetUp() override {
    start_error_ = Start();
    // Non-fatal: the tests still run and each fails with this message.
    if (!start_error_.empty()) ADD_FAILURE() << start_error_;
  }

  void TearDown() override {
    if (started_) {
      Run(absl::StrCat(Bin("pg_ctl"), " -D ", (dir_ / "data").string(), " -m fast -w stop > /dev/null 2>&1"))
          .IgnoreError();
    }
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  // Stops and starts the server (as a failover would), dropping every client
  // connection.
  absl::Status Restart() const {
    return Run(absl::StrCat(Bin("pg_ctl"), " -D ", (dir_ / "data").string(), " -l ", (dir_ / "server.log").string(),
                            " -m fast -w -t 60 -o \"-c listen_addresses='' -k ", dir_.string(),
                            "\" restart > /dev/null 2>&1"));
  }

  // "" when the server is up; otherwise why it is not.
  const std::string& start_error() const { return start_error_; }
  const std::filesystem::path& dir() const { return dir_; }
  // libpq connection string of the test database.
  std::string conninfo() const { return absl::StrCat("host=", dir_.string(), " dbname=icos_test user=postgres"); }

 private:
  // The server binaries: $ICOS_PG_BINDIR, else pg_config's answer at build time.
  static std::string Bin(const std::string& name) {
    const char* env = std::getenv("ICOS_PG_BINDIR");
    return (std::filesystem::path(env != nullptr && env[0] != '\0' ? env : ICOS_PG_BINDIR) / name).string();
  }

  // PostgreSQL refuses to run as root, so as root the server runs as the
  // postgres OS user (which owns the temporary directory).
  std::string AsServerUser(const std::string& command) const {
    return geteuid() == 0 ? absl::StrCat("runuser -u postgres -- ", command) : command;
  }

  absl::Status Run(const std::string& command) const {
    const int rc = std::system(AsServerUser(command).c_str());
    if (rc != 0) return absl::InternalError(absl::StrCat("`", AsServerUser(command), "` exited with ", rc));
    return absl::OkStatus();
  }

  std::string Start() {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "icos_pg_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) return absl::StrCat("mkdtemp ", pattern, " failed");
    dir_ = pattern;
    if (geteuid() == 0) {
      const passwd* pw = getpwnam("postgres");
      if (pw == nullptr) {
        return "running as root, and there is no 'postgres' OS user to run the server as (apt-get install postgresql)";
      }
      if (chown(dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) return absl::StrCat("chown ", dir_.string(), " failed");
    }
    if (!std::filesystem::exists(Bin("initdb"))) {
      return absl::StrCat("no PostgreSQL server binaries at ", Bin(""),
                          " (apt-get install postgresql, or set ICOS_PG_BINDIR)");
    }
    // --no-sync only skips initdb's own fsync of the new cluster; the server
    // still fsyncs every commit (fsync stays on).
    const std::string data = (dir_ / "data").string();
    if (absl::Status s =
            Run(absl::StrCat(Bin("initdb"), " -D ", data, " -A trust -U postgres -E UTF8 --locale=C --no-sync > ",
                             (dir_ / "initdb.log").string(), " 2>&1"));
        !s.ok()) {
      return absl::StrCat("initdb failed: ", s.message(), "\n", ReadAll(dir_ / "initdb.log"));
    }
    if (absl::Status s =
            Run(absl::StrCat(Bin("pg_ctl"), " -D ", data, " -l ", (dir_ / "server.log").string(),
                             " -w -t 60 -o \"-c listen_addresses='' -k ", dir_.string(), "\" start > /dev/null 2>&1"));
        !s.ok()) {
      return absl::StrCat("PostgreSQL server did not start: ", s.message(), "\n", ReadAll(dir_ / "server.log"));
    }
    started_ = true;
    PGconn* conn = PQconnectdb(absl::StrCat("host=", dir_.string(), " dbname=postgres user=postgres").c_str());
    std::string error;
    if (PQstatus(conn) != CONNECTION_OK) {
      error = absl::StrCat("connect to the test server: ", PQerrorMessage(conn));
    } else {
      PGresult* r = PQexec(conn, "CREATE DATABASE icos_test");
      if (PQresultStatus(r) != PGRES_COMMAND_OK) error = absl::StrCat("create database: ", PQresultErrorMessage(r));
      PQclear(r);
    }
    PQfinish(conn);
    return error;
  }

  std::filesystem::path dir_;
  bool started_ = false;
  std::string start_error_ = "the PostgreSQL test environment was not set up";
};

[[maybe_unused]] ::testing::Environment* const kServer = ::testing::AddGlobalTestEnvironment(&PostgresServer::Get());

// A schema name not used before in this process.
std::string NewSchema() {
  static std::atomic<int> next{0};
  return absl::StrCat("store_", next++);
}

absl::StatusOr<std::unique_ptr<PostgresStateStore>> OpenStore(const std::string& schema) {
  if (!PostgresServer::Get().start_error().empty()) {
    return absl::UnavailableError(PostgresServer::Get().start_error());
  }
  return PostgresStateStore::Open({.conninfo = PostgresServer::Get().conninfo(), .schema = schema});
}

std::unique_ptr<StateStore> MakeStore() {
  absl::StatusOr<std::unique_ptr<PostgresStateStore>> store = OpenStore(NewSchema());
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

const StoreBackend kServerBackend{"Server", [] { return MakeStore(); },
                                  [] {
                                    const std::string schema = NewSchema();
                                    return StoreFactory([schema]() -> std::unique_ptr<StateStore> {
                                      auto store = OpenStore(schema);
                                      if (!store.ok()) {
                                        ADD_FAILURE() << store.status();
                                        return nullptr;
                                      }
                                      return *std::move(store);
                                    });
                                  }};
INSTANTIATE_TEST_SUITE_P(Postgres, StateStoreConformanceTest, ::testing::Values(kServerBackend), StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Postgres, SharedStoreConformanceTest, ::testing::Values(kServerBackend), StoreBackendName);

// Runs one statement on the test database beside the store, as another
// client (an operator, an older or newer icos) would.
void ExecRaw(const std::string& sql) {
  PGconn* conn = PQconnectdb(PostgresServer::Get().conninfo().c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* r = PQexec(conn, sql.c_str());
  EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQresultErrorMessage(r);
  PQclear(r);
  PQfinish(conn);
}

JobRecord MakeJob(const std::string& name) {
  return JobRecord{.name = name, .user = "alice", .queue = "default", .spec_json = "{}", .submit_ms = 1000};
}

TEST(PostgresStateStoreTest, DataSurvivesCloseAndReopen) {
  const std::string schema = NewSchema();
  JobRecord job = MakeJob("train");
  {
    auto store = OpenStore(schema);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE((*store)->InsertJob(&job).ok());
    WriteBatch batch;
    batch.tasks.push_back(TaskRecord{.job_id = job.id, .node = "node-a", .placement_json = "{}"});
    ASSERT_TRUE((*store)->Apply(std::move(batch)).ok());
  }
  auto store = OpenStore(schema);
  ASSERT_TRUE(store.ok()) << store.status();
  absl::StatusOr<JobRecord> got = (*store)->GetJob(job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "train");
  auto tasks = (*store)->ListTasks(job.id);
  ASSERT_TRUE(tasks.ok());
  EXPECT_THAT(*tasks, SizeIs(1));
  // Ids keep increasing across opens (a sequence, never reused).
  JobRecord second = MakeJob("next");
  ASSERT_TRUE((*store)->InsertJob(&second).ok());
  EXPECT_GT(second.id, job.id);
}

TEST(PostgresStateStoreTest, NewSchemaIsMigratedToCurrentVersion) {
  const std::string schema = NewSchema();
  auto store = OpenStore(schema);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->SchemaVersion(), PostgresStateStore::kSchemaVersion);
  store->reset();
  // Reopening an up-to-date schema changes nothing.
  auto again = OpenStore(schema);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->SchemaVersion(), PostgresStateStore::kSchemaVersion);
}

TEST(PostgresStateStoreTest, NewerSchemaIsRefusedWithClearMessage) {
  const std::string schema = NewSchema();
  ASSERT_TRUE(OpenStore(schema).ok());
  ExecRaw(absl::StrCat("UPDATE ", schema, ".schema_version SET version = 99"));
  auto store = OpenStore(schema);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("schema v99 is newer than this icos (v",
                                                               PostgresStateStore::kSchemaVersion, ")")));
}

TEST(PostgresStateStoreTest, StoresInDifferentSchemasAreIsolated) {
  auto a = OpenStore(NewSchema());
  auto b = OpenStore(NewSchema());
  ASSERT_TRUE(a.ok() && b.ok());
  JobRecord job = MakeJob("only-in-a");
  ASSERT_TRUE((*a)->InsertJob(&job).ok());
  auto jobs = (*b)->ListJobs({});
  ASSERT_TRUE(jobs.ok());
  EXPECT_THAT(*jobs, SizeIs(0));
}

TEST(PostgresStateStoreTest, DeadServerIsUnavailableNamingTheTarget) {
  // A socket directory where no server listens, and a password that must not leak.
  const std::string nowhere = (PostgresServer::Get().dir() / "no-server-here").string();
  auto store = PostgresStateStore::Open(
      {.conninfo = absl::StrCat("host=", nowhere, " dbname=icos user=icos password=s3cret"), .connect_timeout_s = 2});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("host=", nowhere)));
  EXPECT_THAT(store.status().message(), HasSubstr("password=****"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("s3cret")));
}

TEST(PostgresStateStoreTest, UnknownRoleIsPermissionDenied) {
  auto store = PostgresStateStore::Open(
      {.conninfo = absl::StrCat("host=", PostgresServer::Get().dir().string(), " dbname=icos_test user=nobody")});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kPermissionDenied) << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("nobody"));
}

TEST(PostgresStateStoreTest, MalformedConnectionStringIsInvalidArgument) {
  auto store = PostgresStateStore::Open({.conninfo = "this is not a connection string"});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument) << store.status();
  auto empty = PostgresStateStore::Open({});
  EXPECT_EQ(empty.status().code(), absl::StatusCode::kInvalidArgument) << empty.status();
}

TEST(PostgresStateStoreTest, CallsAfterServerRestartReconnect) {
  auto store = OpenStore(NewSchema());
  ASSERT_TRUE(store.ok()) << store.status();
  JobRecord job = MakeJob("before-restart");
  ASSERT_TRUE((*store)->InsertJob(&job).ok());
  ASSERT_TRUE(PostgresServer::Get().Restart().ok());
  // The pooled connection is dead; the first statement finds out and the
  // call is retried on a new connection, so neither call fails.
  absl::StatusOr<JobRecord> got = (*store)->GetJob(job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "before-restart");
  JobRecord after = MakeJob("after-restart");
  absl::Status s = (*store)->InsertJob(&after);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_GT(after.id, job.id);
}

TEST(PostgresStateStoreTest, TextWithNulByteIsInvalidArgument) {
  auto store = OpenStore(NewSchema());
  ASSERT_TRUE(store.ok()) << store.status();
  JobRecord job = MakeJob(std::string("a\0b", 3));
  absl::Status s = (*store)->InsertJob(&job);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(job.id, 0);
}

// Ends every session holding a store's leadership lock, as a network
// partition or an operator's pg_terminate_backend would; returns how many.
int TerminateLeaderSessions() {
  PGconn* conn = PQconnectdb(PostgresServer::Get().conninfo().c_str());
  EXPECT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  // Two-key advisory locks show key 1 as classid and objsubid 2; "icol".
  PGresult* r = PQexec(conn,
                       "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND "
                       "objsubid = 2 AND classid = x'69636f6c'::bigint::oid");
  EXPECT_EQ(PQresultStatus(r), PGRES_TUPLES_OK) << PQresultErrorMessage(r);
  const int n = PQresultStatus(r) == PGRES_TUPLES_OK ? std::atoi(PQgetvalue(r, 0, 0)) : 0;
  PQclear(r);
  PQfinish(conn);
  return n;
}

TEST(PostgresStateStoreTest, OldLeaderIsFencedOnceItsSessionEndsAndAnotherTakesOver) {
  const std::string schema = NewSchema();
  absl::StatusOr<std::unique_ptr<PostgresStateStore>> a = OpenStore(schema);
  absl::StatusOr<std::unique_ptr<PostgresStateStore>> b = OpenStore(schema);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE((*a)->TryLead({.holder = "a", .url = "http://a"}).value().acquired);
  ASSERT_FALSE((*b)->TryLead({.holder = "b", .url = "http://b"}).value().acquired);
  JobRecord job;
  job.name = "by-a";
  job.spec_json = "{}";
  ASSERT_TRUE((*a)->InsertJob(&job).ok());

  ASSERT_EQ(TerminateLeaderSessions(), 1);
  absl::Status lost = (*a)->CheckLeadership();
  EXPECT_EQ(lost.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(lost.message(), HasSubstr("lost the session that holds the leadership lock"));
  absl::StatusOr<LeadResult> taken = (*b)->TryLead({.holder = "b", .url = "http://b"});
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE(taken->acquired);
  EXPECT_EQ(taken->leader.epoch, 2);

  // a's pooled connections still work, but its writes are refused.
  JobRecord late;
  late.name = "late";
  late.spec_json = "{}";
  absl::Status refused = (*a)->InsertJob(&late);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("no longer leads the store (it led at epoch 1; 'b' at http://b took over "
                                           "at epoch 2)"));
  job.state = JobState::kCancelled;
  EXPECT_EQ((*a)->Apply({.jobs = {job}}).code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<JobRecord> stored = (*b)->GetJob(job.id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state, JobState::kPending);
  EXPECT_THAT((*b)->ListJobs({}).value(), SizeIs(1));
  EXPECT_TRUE((*b)->Apply({.jobs = {job}}).ok());
}

}  // namespace
}  // namespace icos::store
