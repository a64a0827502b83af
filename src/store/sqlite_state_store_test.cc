#include "store/sqlite_state_store.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
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

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::SizeIs;

// A directory of this test process's database files, made on first use and
// removed when the tests end.
std::optional<std::filesystem::path>& TestDirSlot() {
  static std::optional<std::filesystem::path> dir;
  return dir;
}

const std::filesystem::path& TestDir() {
  std::optional<std::filesystem::path>& dir = TestDirSlot();
  if (!dir.has_value()) {
    std::string pattern = (std::filesystem::path(::testing::TempDir()) / "icos_store_test_XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) ADD_FAILURE() << "mkdtemp " << pattern << " failed";
    dir = pattern;
  }
  return *dir;
}

class RemoveTestDir : public ::testing::Environment {
 public:
  void TearDown() override {
    if (TestDirSlot().has_value()) {
      std::error_code ignored;
      std::filesystem::remove_all(*TestDirSlot(), ignored);
    }
  }
};
[[maybe_unused]] ::testing::Environment* const kRemoveTestDir = ::testing::AddGlobalTestEnvironment(new RemoveTestDir);

// A fresh database path; the file does not exist yet.
std::string NewDbPath() {
  static std::atomic<int> next{0};
  return (TestDir() / absl::StrCat("db", next++, ".sqlite")).string();
}

std::unique_ptr<StateStore> MakeStore(const std::string& path) {
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  if (!store.ok()) {
    ADD_FAILURE() << store.status();
    return nullptr;
  }
  return *std::move(store);
}

const StoreBackend kFileBackend{"File", [] { return MakeStore(NewDbPath()); },
                                [] {
                                  const std::string path = NewDbPath();
                                  return StoreFactory([path] { return MakeStore(path); });
                                }};
INSTANTIATE_TEST_SUITE_P(Sqlite, StateStoreConformanceTest,
                         ::testing::Values(StoreBackend{"InMemory", [] { return MakeStore(":memory:"); }},
                                           kFileBackend),
                         StoreBackendName);
INSTANTIATE_TEST_SUITE_P(Sqlite, SharedStoreConformanceTest, ::testing::Values(kFileBackend), StoreBackendName);

// A plain SQLite connection beside the store, to look at or tamper with the
// file the way another process would.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << "open " << path << ": " << sqlite3_errmsg(db_);
  }
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* error = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (error != nullptr ? error : "?");
    }
    sqlite3_free(error);
  }

  // The first column of the first row of `sql`, as text ("" when no row).
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    std::string result;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return result;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) result = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    sqlite3_finalize(stmt);
    return result;
  }

 private:
  sqlite3* db_ = nullptr;
};

JobRecord MakeJob(const std::string& name) {
  return JobRecord{.name = name, .user = "alice", .queue = "default", .spec_json = "{}", .submit_ms = 1000};
}

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

TEST(SqliteStateStoreTest, DataSurvivesCloseAndReopen) {
  const std::string path = NewDbPath();
  JobRecord job = MakeJob("survivor");
  {
    std::unique_ptr<StateStore> store = MakeStore(path);
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertJob(&job).ok());
    ASSERT_TRUE(store
                    ->Apply({.tasks = {{.job_id = job.id, .node = "node-a", .state = TaskState::kRunning}},
                             .nodes = {{.name = "node-a", .state = "Ready"}},
                             .queues = {{.name = "default", .spec_json = "{}"}},
                             .tokens = {{.token_hash = "abc", .role = "admin"}},
                             .events = {{.job_id = job.id, .kind = "Scheduled"}}})
                    .ok());
  }  // closed, as at a controller restart
  std::unique_ptr<StateStore> store = MakeStore(path);
  ASSERT_NE(store, nullptr);
  absl::StatusOr<JobRecord> got = store->GetJob(job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "survivor");
  EXPECT_THAT(*store->ListActiveTasks(), SizeIs(1));
  EXPECT_THAT(*store->ListNodes(), SizeIs(1));
  EXPECT_THAT(*store->ListQueues(), SizeIs(1));
  EXPECT_TRUE(store->GetToken("abc").ok());
  EXPECT_THAT(*store->ListEvents(job.id, 0, 0), SizeIs(2));  // Submitted, Scheduled
}

TEST(SqliteStateStoreTest, IdsKeepIncreasingAfterReopen) {
  const std::string path = NewDbPath();
  JobRecord first = MakeJob("first");
  ASSERT_TRUE(MakeStore(path)->InsertJob(&first).ok());
  JobRecord second = MakeJob("second");
  ASSERT_TRUE(MakeStore(path)->InsertJob(&second).ok());
  EXPECT_GT(second.id, first.id);
}

TEST(SqliteStateStoreTest, NewDatabaseIsMigratedToLatestSchema) {
  const std::string path = NewDbPath();
  std::unique_ptr<StateStore> store = MakeStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), SqliteStateStore::kSchemaVersion);
  RawDb raw(path);
  EXPECT_EQ(raw.QueryText("PRAGMA user_version"), "9");
  EXPECT_EQ(
      raw.QueryText("SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_schema WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite_%' ORDER BY name)"),
      "cluster,events,idempotency_keys,jobs,leader,nodes,notifications,queues,services,tasks,tokens,usage,utilisation");
  EXPECT_EQ(raw.QueryText("SELECT epoch FROM leader"), "0");
}

// A database written by the first release (schema v1) keeps its jobs and
// gains the accounting and leader tables when a newer icos opens it.
TEST(SqliteStateStoreTest, Version1DatabaseIsMigratedKeepingItsJobs) {
  const std::string path = NewDbPath();
  {
    RawDb raw(path);
    raw.Exec(
        "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, user TEXT NOT NULL, queue TEXT "
        "NOT NULL, priority INTEGER NOT NULL, state TEXT NOT NULL, spec_json TEXT NOT NULL, reason TEXT NOT NULL, "
        "submit_ms INTEGER NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, attempt INTEGER NOT NULL) "
        "STRICT; "
        "CREATE TABLE tasks (job_id INTEGER NOT NULL REFERENCES jobs(id), grp INTEGER NOT NULL, replica INTEGER NOT "
        "NULL, attempt INTEGER NOT NULL, node TEXT NOT NULL, placement_json TEXT NOT NULL, state TEXT NOT NULL, "
        "exit_code INTEGER NOT NULL, reason TEXT NOT NULL, start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, "
        "PRIMARY KEY (job_id, grp, replica, attempt)) STRICT, WITHOUT ROWID; "
        "CREATE TABLE nodes (name TEXT PRIMARY KEY, spec_json TEXT NOT NULL, state TEXT NOT NULL, address TEXT NOT "
        "NULL, registered_ms INTEGER NOT NULL, heartbeat_ms INTEGER NOT NULL) STRICT, WITHOUT ROWID; "
        "CREATE TABLE queues (name TEXT PRIMARY KEY, spec_json TEXT NOT NULL) STRICT, WITHOUT ROWID; "
        "CREATE TABLE tokens (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, user TEXT NOT "
        "NULL, created_ms INTEGER NOT NULL, revoked INTEGER NOT NULL) STRICT, WITHOUT ROWID; "
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, job_id INTEGER NOT NULL, node TEXT NOT NULL, "
        "time_ms INTEGER NOT NULL, kind TEXT NOT NULL, message TEXT NOT NULL) STRICT; "
        "INSERT INTO jobs VALUES(7, 'old', 'alice', 'default', 0, 'Succeeded', '{}', '', 1000, 2000, 3000, 0); "
        "PRAGMA user_version = 1;");
  }
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->SchemaVersion(), SqliteStateStore::kSchemaVersion);
  absl::StatusOr<JobRecord> job = (*store)->GetJob(7);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name, "old");
  EXPECT_EQ(job->hold, "");  // columns added later take their defaults
  EXPECT_EQ(job->checkpoint_ms, 0);
  EXPECT_EQ(job->lost_device_ms, 0);
  EXPECT_EQ(job->checkpoint_save_ms, 0);
  absl::StatusOr<std::vector<JobCounts>> counts = (*store)->CountJobs(0, 10'000);
  ASSERT_TRUE(counts.ok()) << counts.status();
  ASSERT_EQ(counts->size(), 1u);
  EXPECT_EQ((*counts)[0].succeeded, 1);
}

TEST(SqliteStateStoreTest, ReopeningCurrentSchemaKeepsVersion) {
  const std::string path = NewDbPath();
  ASSERT_NE(MakeStore(path), nullptr);
  std::unique_ptr<StateStore> store = MakeStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), SqliteStateStore::kSchemaVersion);
}

TEST(SqliteStateStoreTest, InMemoryDatabaseIsMigratedToLatestSchema) {
  std::unique_ptr<StateStore> store = MakeStore(":memory:");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion(), SqliteStateStore::kSchemaVersion);
}

TEST(SqliteStateStoreTest, NewerSchemaIsRefusedWithClearMessage) {
  const std::string path = NewDbPath();
  constexpr int32_t kNewer = SqliteStateStore::kSchemaVersion + 1;
  RawDb(path).Exec(absl::StrCat("PRAGMA user_version = ", kNewer));
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("database schema v", kNewer, " is newer than this icos (v",
                                     SqliteStateStore::kSchemaVersion, "); upgrade icos")));
}

TEST(SqliteStateStoreTest, NonDatabaseFileIsRefusedWithClearMessage) {
  const std::string path = NewDbPath();
  std::string text;
  for (int i = 0; i < 200; ++i) text += "this is a job spec, not a database\n";
  WriteFile(path, text);
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("file is not a database"));
}

TEST(SqliteStateStoreTest, CorruptDatabaseGivesErrorNotCrash) {
  const std::string path = NewDbPath();
  {
    std::unique_ptr<StateStore> store = MakeStore(path);
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 50; ++i) {
      JobRecord job = MakeJob("j");
      ASSERT_TRUE(store->InsertJob(&job).ok());
    }
  }
  // Keep the 100-byte header (so SQLite recognises the file) and scribble
  // over the rest of page 1, which holds the schema.
  {
    std::fstream file(path, std::ios::binary | std::ios::in | std::ios::out);
    file.seekp(100);
    const std::string garbage(3000, '\xA5');
    file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
  }
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(path));
  EXPECT_THAT(store.status().message(), HasSubstr("malformed"));
}

TEST(SqliteStateStoreTest, FileDatabaseUsesWalJournal) {
  const std::string path = NewDbPath();
  std::unique_ptr<StateStore> store = MakeStore(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(path).QueryText("PRAGMA journal_mode"), "wal");
}

TEST(SqliteStateStoreTest, EmptyPathIsInvalidArgument) {
  EXPECT_EQ(SqliteStateStore::Open({.path = ""}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteStateStoreTest, MissingDirectoryGivesErrorNamingThePath) {
  const std::string path = (TestDir() / "no-such-dir" / "icos.db").string();
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store = SqliteStateStore::Open({.path = path});
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr(absl::StrCat("open ", path, ": unable to open database file")));
}

TEST(SqliteStateStoreTest, LockedDatabaseFailsInsertWithContext) {
  const std::string path = NewDbPath();
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open({.path = path, .busy_timeout_ms = 10});
  ASSERT_TRUE(store.ok()) << store.status();
  RawDb other(path);  // another process holding the write lock
  other.Exec("BEGIN IMMEDIATE");
  JobRecord job = MakeJob("blocked");
  absl::Status status = (*store)->InsertJob(&job);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "insert job: database is locked");
  EXPECT_EQ(job.id, 0);  // no id for a job that was not stored
  other.Exec("ROLLBACK");
}

TEST(SqliteStateStoreTest, FileReadsDoNotWaitForAnotherWriter) {
  const std::string path = NewDbPath();
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open({.path = path, .busy_timeout_ms = 10});
  ASSERT_TRUE(store.ok()) << store.status();
  JobRecord committed = MakeJob("committed");
  ASSERT_TRUE((*store)->InsertJob(&committed).ok());
  RawDb other(path);
  other.Exec("BEGIN IMMEDIATE");
  other.Exec("UPDATE jobs SET name = 'uncommitted'");
  // WAL: the read sees the last commit instead of failing on the lock.
  absl::StatusOr<JobRecord> got = (*store)->GetJob(committed.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->name, "committed");
  other.Exec("ROLLBACK");
}

TEST(SqliteStateStoreTest, InsertJobOfNullIsInvalidArgument) {
  std::unique_ptr<StateStore> store = MakeStore(":memory:");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->InsertJob(nullptr).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteStateStoreTest, ApplyTaskOfUnknownJobIsNotFoundAndAppliesNothing) {
  std::unique_ptr<StateStore> store = MakeStore(":memory:");
  ASSERT_NE(store, nullptr);
  absl::Status status = store->Apply({.tasks = {{.job_id = 42}}, .nodes = {{.name = "node-a"}}});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("job 42"));
  EXPECT_THAT(*store->ListNodes(), ElementsAre());
}

TEST(SqliteStateStoreTest, NegativeLimitIsInvalidArgument) {
  std::unique_ptr<StateStore> store = MakeStore(":memory:");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->ListJobs({.limit = -1}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store->ListEvents(0, 0, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(SqliteStateStoreTest, GroupCommitCapStillCommitsEveryCaller) {
  // max_group_commit = 1: every insert is its own transaction, exercising the
  // path where a leader commits groups that do not include itself.
  absl::StatusOr<std::unique_ptr<SqliteStateStore>> store =
      SqliteStateStore::Open({.path = ":memory:", .max_group_commit = 1});
  ASSERT_TRUE(store.ok()) << store.status();
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        JobRecord job = MakeJob("j");
        if (!(*store)->InsertJob(&job).ok() || job.id <= 0) ++failures;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_THAT(*(*store)->ListJobs({}), SizeIs(200));
}

// Removing the lock file lets a second controller lock a new one: the first
// notices at its next check, and its writes are refused from the takeover on.
TEST(SqliteStateStoreTest, OldLeaderIsFencedOnceAnotherTakesOver) {
  const std::string path = NewDbPath();
  std::unique_ptr<StateStore> a = MakeStore(path);
  std::unique_ptr<StateStore> b = MakeStore(path);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->TryLead({.holder = "a", .url = "http://a"}).value().acquired);
  JobRecord job;
  job.name = "by-a";
  job.spec_json = "{}";
  ASSERT_TRUE(a->InsertJob(&job).ok());

  ASSERT_EQ(::unlink((path + ".leader").c_str()), 0);
  EXPECT_THAT(a->CheckLeadership().message(), HasSubstr("was removed or replaced"));
  absl::StatusOr<LeadResult> taken = b->TryLead({.holder = "b", .url = "http://b"});
  ASSERT_TRUE(taken.ok()) << taken.status();
  ASSERT_TRUE(taken->acquired);

  JobRecord late;
  late.name = "late";
  late.spec_json = "{}";
  absl::Status refused = a->InsertJob(&late);
  EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.message(), HasSubstr("no longer leads the store (it led at epoch 1; 'b' at http://b took over "
                                           "at epoch 2)"));
  job.state = JobState::kCancelled;
  EXPECT_EQ(a->Apply({.jobs = {job}}).code(), absl::StatusCode::kFailedPrecondition);
  absl::StatusOr<JobRecord> stored = b->GetJob(job.id);
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->state, JobState::kPending);  // a's late update did not land
  EXPECT_THAT(b->ListJobs({}).value(), SizeIs(1));
  EXPECT_TRUE(b->Apply({.jobs = {job}}).ok());
}

}  // namespace
}  // namespace icos::store
