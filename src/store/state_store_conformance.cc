#include "store/state_store_conformance.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/records.h"
#include "store/state_store.h"

namespace icos::store {

std::string StoreBackendName(const ::testing::TestParamInfo<StoreBackend>& info) { return info.param.name; }

void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

void StateStoreConformanceTest::SetUp() {
  store_ = GetParam().make();
  ASSERT_NE(store_, nullptr) << "backend " << GetParam().name << " did not make a store";
}

// A library that only some binaries instantiate.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StateStoreConformanceTest);
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(SharedStoreConformanceTest);

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// Every field as a tuple, so one EXPECT_EQ compares (and on failure prints)
// whole records; the records themselves define no operator==.
auto Fields(const JobRecord& j) {
  return std::make_tuple(j.id, j.name, j.user, j.queue, j.priority, JobStateName(j.state), j.spec_json, j.reason,
                         j.submit_ms, j.start_ms, j.end_ms, j.attempt, j.run_uid, j.run_gid, j.hold, j.array_id,
                         j.array_index, j.checkpoint_ms, j.lost_device_ms, j.checkpoint_save_ms);
}
auto Fields(const TaskRecord& t) {
  return std::make_tuple(t.job_id, t.group, t.replica, t.attempt, t.node, t.placement_json, TaskStateName(t.state),
                         t.exit_code, t.reason, t.start_ms, t.end_ms, t.max_rss_kib);
}
auto Fields(const NodeRecord& n) {
  return std::make_tuple(n.name, n.spec_json, n.state, n.address, n.registered_ms, n.heartbeat_ms);
}
auto Fields(const QueueRecord& q) { return std::make_tuple(q.name, q.spec_json); }
auto Fields(const ServiceRecord& s) { return std::make_tuple(s.id, s.state_json); }
auto Fields(const TokenRecord& t) {
  return std::make_tuple(t.token_hash, t.name, t.role, t.user, t.created_ms, t.revoked, t.uid, t.gid, t.expires_ms,
                         t.last_used_ms, t.node);
}
auto Fields(const EventRecord& e) { return std::make_tuple(e.id, e.job_id, e.node, e.time_ms, e.kind, e.message); }
auto Fields(const UsageRecord& u) {
  return std::make_tuple(u.job_id, u.group, u.replica, u.attempt, u.user, u.queue, u.node, u.start_ms, u.end_ms,
                         u.cpu_milli, u.devices_json);
}
auto Fields(const UtilisationSample& s) { return std::make_tuple(s.time_s, s.sample_json); }
auto Fields(const JobCounts& c) {
  return std::make_tuple(c.user, c.queue, c.submitted, c.succeeded, c.failed, c.cancelled, c.lost_device_ms);
}

template <typename T>
auto Fields(const std::vector<T>& records) {
  std::vector<decltype(Fields(records.front()))> out;
  for (const T& r : records) out.push_back(Fields(r));
  return out;
}

// The interface promises no order for nodes, queues and tokens.
template <typename T, typename Key>
std::vector<T> SortedBy(std::vector<T> records, Key key) {
  std::sort(records.begin(), records.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
  return records;
}

JobRecord MakeJob(const std::string& name, const std::string& user = "alice", const std::string& queue = "default") {
  return JobRecord{.name = name,
                   .user = user,
                   .queue = queue,
                   .priority = 1,
                   .spec_json = R"({"tasks":[{"replicas":1}]})",
                   .submit_ms = 1000};
}

TaskRecord MakeTask(int64_t job_id, int32_t group, int32_t replica, int32_t attempt,
                    TaskState state = TaskState::kAssigned) {
  return TaskRecord{.job_id = job_id,
                    .group = group,
                    .replica = replica,
                    .attempt = attempt,
                    .node = "node-a",
                    .placement_json = R"({"devices":[0]})",
                    .state = state};
}

// Inserts `job` and returns its id (0 after a failure, which is also reported).
int64_t Insert(StateStore& store, JobRecord job) {
  absl::Status status = store.InsertJob(&job);
  EXPECT_TRUE(status.ok()) << status;
  return job.id;
}

void ExpectApplied(StateStore& store, WriteBatch batch) {
  absl::Status status = store.Apply(std::move(batch));
  EXPECT_TRUE(status.ok()) << status;
}

std::vector<int64_t> Ids(const std::vector<JobRecord>& jobs) {
  std::vector<int64_t> ids;
  for (const JobRecord& j : jobs) ids.push_back(j.id);
  return ids;
}

std::vector<int64_t> Ids(const std::vector<EventRecord>& events) {
  std::vector<int64_t> ids;
  for (const EventRecord& e : events) ids.push_back(e.id);
  return ids;
}

// ---- InsertJob and GetJob ----

TEST_P(StateStoreConformanceTest, InsertJobAssignsIncreasingPositiveIds) {
  const int64_t a = Insert(*store_, MakeJob("a"));
  const int64_t b = Insert(*store_, MakeJob("b"));
  const int64_t c = Insert(*store_, MakeJob("c"));
  EXPECT_GT(a, 0);
  EXPECT_LT(a, b);
  EXPECT_LT(b, c);
}

TEST_P(StateStoreConformanceTest, InsertJobAppendsSubmittedEvent) {
  const int64_t id = Insert(*store_, MakeJob("a"));
  absl::StatusOr<std::vector<EventRecord>> events = store_->ListEvents(id, 0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_THAT(*events, SizeIs(1));
  EXPECT_EQ((*events)[0].job_id, id);
  EXPECT_EQ((*events)[0].kind, "Submitted");
  EXPECT_GT((*events)[0].id, 0);
}

// ---- The cluster's id ----

TEST_P(StateStoreConformanceTest, ClusterIdIsMadeOnceAndKept) {
  absl::StatusOr<std::string> first = store_->ClusterId("c-first");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "c-first");
  absl::StatusOr<std::string> again = store_->ClusterId("c-second");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, "c-first");
}

TEST(NewClusterIdTest, IsFreshAndSafeAsAPathComponent) {
  const std::string a = NewClusterId(), b = NewClusterId();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 17u);
  EXPECT_EQ(a.find_first_not_of("c0123456789abcdef"), std::string::npos) << a;
}

// ---- Idempotency keys: a retried submit finds the job it made ----

JobRecord Keyed(const std::string& name, const std::string& key, const std::string& digest, int64_t submit_ms = 1000,
                const std::string& user = "alice") {
  JobRecord job = MakeJob(name, user);
  job.idempotency_key = key;
  job.request_digest = digest;
  job.submit_ms = submit_ms;
  return job;
}

TEST_P(StateStoreConformanceTest, SameKeyAndRequestReturnsTheFirstJobAndInsertsNothing) {
  JobRecord first = Keyed("a", "k1", "d1");
  ASSERT_TRUE(store_->InsertJob(&first).ok());
  EXPECT_FALSE(first.replayed);
  JobRecord retry = Keyed("a", "k1", "d1", 2000);
  ASSERT_TRUE(store_->InsertJob(&retry).ok());
  EXPECT_TRUE(retry.replayed);
  EXPECT_EQ(retry.id, first.id);
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(first.id));
}

TEST_P(StateStoreConformanceTest, SameKeyForAnotherRequestIsAConflict) {
  JobRecord first = Keyed("a", "k1", "d1");
  ASSERT_TRUE(store_->InsertJob(&first).ok());
  JobRecord other = Keyed("b", "k1", "d2");
  absl::Status status = store_->InsertJob(&other);
  EXPECT_TRUE(absl::IsAlreadyExists(status)) << status;
  EXPECT_THAT(std::string(status.message()), HasSubstr("k1"));
  EXPECT_EQ(other.id, first.id);
}

TEST_P(StateStoreConformanceTest, KeysAreNamespacedByUser) {
  JobRecord alice = Keyed("a", "k1", "d1", 1000, "alice");
  JobRecord bob = Keyed("a", "k1", "d1", 1000, "bob");
  ASSERT_TRUE(store_->InsertJob(&alice).ok());
  ASSERT_TRUE(store_->InsertJob(&bob).ok());
  EXPECT_FALSE(bob.replayed);
  EXPECT_NE(alice.id, bob.id);
}

TEST_P(StateStoreConformanceTest, KeyOlderThanTheWindowMakesANewJob) {
  JobRecord first = Keyed("a", "k1", "d1", 1000);
  ASSERT_TRUE(store_->InsertJob(&first).ok());
  JobRecord later = Keyed("a", "k1", "d1", 1000 + kIdempotencyWindowMs + 1);
  ASSERT_TRUE(store_->InsertJob(&later).ok());
  EXPECT_FALSE(later.replayed);
  EXPECT_GT(later.id, first.id);
  // The key now stands for the new job.
  JobRecord again = Keyed("a", "k1", "d1", 2000 + kIdempotencyWindowMs);
  ASSERT_TRUE(store_->InsertJob(&again).ok());
  EXPECT_EQ(again.id, later.id);
}

// Concurrent retries with one key (a client that timed out and retried
// while the first request still waited for its commit) get one job.
TEST_P(StateStoreConformanceTest, ConcurrentRetriesWithOneKeyMakeOneJob) {
  constexpr int kThreads = 8;
  std::vector<int64_t> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      JobRecord job = Keyed("a", "same", "d1");
      EXPECT_TRUE(store_->InsertJob(&job).ok());
      ids[t] = job.id;
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(ids[t], ids[0]);
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(*jobs, SizeIs(1));
}

TEST_P(StateStoreConformanceTest, GetJobReturnsEveryFieldAsInserted) {
  // Values at the edges of their types and text that quoting or encoding could
  // damage: quotes, backslashes, newlines, multi-byte UTF-8.
  JobRecord job{.name = "it's a \"job\"\n\\ \u8bad\u7ec3 \U0001F680",
                .user = "bob@example.com",
                .queue = "team-\u00e9",
                .priority = std::numeric_limits<int32_t>::min(),
                .state = JobState::kRunning,
                .spec_json = R"({"a":[1,2,{"b":"\u00e9"}],"c":null})",
                .reason = "waiting for 8 x \"A100\"",
                .submit_ms = std::numeric_limits<int64_t>::max(),
                .start_ms = -1,
                .end_ms = 1'700'000'000'123,
                .attempt = std::numeric_limits<int32_t>::max(),
                .run_uid = 4'294'967'294,
                .run_gid = 0,
                .hold = "admin"};
  ASSERT_TRUE(store_->InsertJob(&job).ok());
  absl::StatusOr<JobRecord> got = store_->GetJob(job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Fields(*got), Fields(job));
}

TEST_P(StateStoreConformanceTest, GetJobOfUnknownIdIsNotFound) {
  const int64_t id = Insert(*store_, MakeJob("a"));
  EXPECT_EQ(store_->GetJob(id + 1000).status().code(), absl::StatusCode::kNotFound);
}

// ---- ListJobs ----

TEST_P(StateStoreConformanceTest, ListJobsReturnsAllInAscendingIdOrder) {
  const int64_t a = Insert(*store_, MakeJob("a"));
  const int64_t b = Insert(*store_, MakeJob("b"));
  const int64_t c = Insert(*store_, MakeJob("c"));
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(a, b, c));
}

TEST_P(StateStoreConformanceTest, ListJobsFiltersByStates) {
  const int64_t pending = Insert(*store_, MakeJob("pending"));
  JobRecord running = MakeJob("running");
  running.state = JobState::kRunning;
  const int64_t running_id = Insert(*store_, running);
  JobRecord failed = MakeJob("failed");
  failed.state = JobState::kFailed;
  Insert(*store_, failed);

  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({.states = {JobState::kRunning, JobState::kPending}});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(pending, running_id));
}

TEST_P(StateStoreConformanceTest, ListJobsFiltersByUser) {
  Insert(*store_, MakeJob("a", "alice"));
  const int64_t bob = Insert(*store_, MakeJob("b", "bob"));
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({.user = "bob"});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(bob));
}

TEST_P(StateStoreConformanceTest, ListJobsFiltersByQueue) {
  const int64_t research = Insert(*store_, MakeJob("a", "alice", "research"));
  Insert(*store_, MakeJob("b", "alice", "prod"));
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({.queue = "research"});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(research));
}

TEST_P(StateStoreConformanceTest, ListJobsFiltersByName) {
  Insert(*store_, MakeJob("train"));
  const int64_t eval = Insert(*store_, MakeJob("eval"));
  Insert(*store_, MakeJob("eval-2"));  // exact names, not prefixes
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({.name = "eval"});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(eval));
}

// An array goes in as one: ids in order, every element's array id the
// first's, listed by it; its key stands for the whole array.
TEST_P(StateStoreConformanceTest, InsertJobsInsertsAnArrayAsOne) {
  const int64_t before = Insert(*store_, MakeJob("single"));
  auto array = [] {
    std::vector<JobRecord> jobs;
    for (int i = 0; i < 3; ++i) {
      JobRecord j = MakeJob("arr");
      j.array_index = 10 + i;
      j.array_id = i == 0 ? 0 : kNewArray;
      j.starts_array = i == 0;
      j.idempotency_key = i == 0 ? "k1" : "";
      j.request_digest = "d";
      jobs.push_back(j);
    }
    return jobs;
  };
  std::vector<JobRecord> jobs = array();
  ASSERT_TRUE(store_->InsertJobs(&jobs).ok());
  EXPECT_GT(jobs[0].id, before);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(jobs[i].array_id, jobs[0].id);
    if (i > 0) {
      EXPECT_GT(jobs[i].id, jobs[i - 1].id);
    }
    absl::StatusOr<JobRecord> got = store_->GetJob(jobs[i].id);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->array_id, jobs[0].id);
    EXPECT_EQ(got->array_index, 10 + i);
  }
  absl::StatusOr<std::vector<JobRecord>> listed = store_->ListJobs({.array_id = jobs[0].id});
  ASSERT_TRUE(listed.ok()) << listed.status();
  EXPECT_THAT(Ids(*listed), ElementsAre(jobs[0].id, jobs[1].id, jobs[2].id));
  absl::StatusOr<std::vector<JobRecord>> one = store_->ListJobs({.array_id = jobs[0].id, .array_index = 11});
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_THAT(Ids(*one), ElementsAre(jobs[1].id));
  std::vector<JobRecord> again = array();  // a retry: nothing new
  ASSERT_TRUE(store_->InsertJobs(&again).ok());
  EXPECT_TRUE(again[0].replayed);
  EXPECT_EQ(again[0].id, jobs[0].id);
  absl::StatusOr<std::vector<JobRecord>> all = store_->ListJobs({});
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, SizeIs(4));
}

TEST_P(StateStoreConformanceTest, ListJobsCombinesFiltersWithAnd) {
  JobRecord match = MakeJob("match", "bob", "prod");
  match.state = JobState::kRunning;
  const int64_t match_id = Insert(*store_, match);
  JobRecord wrong_state = match;
  wrong_state.state = JobState::kPending;
  Insert(*store_, wrong_state);
  JobRecord wrong_user = match;
  wrong_user.user = "alice";
  Insert(*store_, wrong_user);
  JobRecord wrong_queue = match;
  wrong_queue.queue = "research";
  Insert(*store_, wrong_queue);

  absl::StatusOr<std::vector<JobRecord>> jobs =
      store_->ListJobs({.states = {JobState::kRunning}, .user = "bob", .queue = "prod"});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  EXPECT_THAT(Ids(*jobs), ElementsAre(match_id));
}

TEST_P(StateStoreConformanceTest, ListJobsPagesWithAfterIdAndLimit) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Insert(*store_, MakeJob(absl::StrCat("j", i))));
  // After the first id, at most two: the second and the third.
  absl::StatusOr<std::vector<JobRecord>> page = store_->ListJobs({.after_id = ids[0], .limit = 2});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[1], ids[2]));
  // The next page continues after the last id seen and ends short.
  page = store_->ListJobs({.after_id = ids[2], .limit = 3});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[3], ids[4]));
}

// Newest first, paged with a cursor: what was just submitted is on the first
// page however many jobs the store holds (`icos jobs`, the dashboard).
TEST_P(StateStoreConformanceTest, ListJobsNewestFirstPagesBackwardsWithACursor) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Insert(*store_, MakeJob(absl::StrCat("j", i))));
  absl::StatusOr<std::vector<JobRecord>> page = store_->ListJobs({.newest_first = true, .limit = 2});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[4], ids[3]));
  page = store_->ListJobs({.before_id = ids[3], .newest_first = true, .limit = 2});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[2], ids[1]));
  page = store_->ListJobs({.before_id = ids[1], .newest_first = true, .limit = 2});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[0]));
  // Both bounds: a window.
  page = store_->ListJobs({.after_id = ids[0], .before_id = ids[4]});
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre(ids[1], ids[2], ids[3]));
}

// ---- Apply: jobs and atomicity ----

TEST_P(StateStoreConformanceTest, ApplyUpdatesEveryJobField) {
  JobRecord job = MakeJob("a");
  ASSERT_TRUE(store_->InsertJob(&job).ok());
  job.name = "renamed";
  job.user = "carol";
  job.queue = "prod";
  job.priority = -7;
  job.state = JobState::kSucceeded;
  job.spec_json = R"({"changed":true})";
  job.reason = "exit 0";
  job.submit_ms = 1001;
  job.start_ms = 2000;
  job.end_ms = 3000;
  job.attempt = 2;
  job.hold = "user";
  job.array_id = 77;
  job.array_index = 3;
  job.checkpoint_ms = 2'500;
  job.lost_device_ms = 1'234'567;
  job.checkpoint_save_ms = 42'000;
  ExpectApplied(*store_, {.jobs = {job}});
  absl::StatusOr<JobRecord> got = store_->GetJob(job.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Fields(*got), Fields(job));
}

TEST_P(StateStoreConformanceTest, ApplyWithUnknownJobIsNotFoundAndAppliesNothing) {
  JobRecord known = MakeJob("known");
  ASSERT_TRUE(store_->InsertJob(&known).ok());
  absl::StatusOr<std::vector<EventRecord>> events_before = store_->ListEvents(0, 0, 0);
  ASSERT_TRUE(events_before.ok()) << events_before.status();

  JobRecord updated = known;
  updated.state = JobState::kRunning;
  JobRecord unknown = MakeJob("ghost");
  unknown.id = known.id + 1000;
  // The unknown job comes last so that every other write is attempted first.
  WriteBatch batch{.jobs = {updated, unknown},
                   .tasks = {MakeTask(known.id, 0, 0, 0)},
                   .nodes = {NodeRecord{.name = "node-a", .state = "Ready"}},
                   .queues = {QueueRecord{.name = "q", .spec_json = "{}"}},
                   .services = {ServiceRecord{.id = known.id, .state_json = "{}"}},
                   .tokens = {TokenRecord{.token_hash = "h", .role = "admin"}},
                   .events = {EventRecord{.job_id = known.id, .kind = "Scheduled"}},
                   .notifications = {NotificationRecord{.job_id = known.id, .url = "http://h/", .body = "{}"}}};
  EXPECT_EQ(store_->Apply(batch).code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(*store_->ListDueNotifications(std::numeric_limits<int64_t>::max(), 0), IsEmpty());

  absl::StatusOr<JobRecord> got = store_->GetJob(known.id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kPending);
  EXPECT_THAT(*store_->ListTasks(known.id), IsEmpty());
  EXPECT_THAT(*store_->ListNodes(), IsEmpty());
  EXPECT_THAT(*store_->ListQueues(), IsEmpty());
  EXPECT_THAT(*store_->ListServices(), IsEmpty());
  EXPECT_THAT(*store_->ListTokens(), IsEmpty());
  EXPECT_EQ(Fields(*store_->ListEvents(0, 0, 0)), Fields(*events_before));
}

TEST_P(StateStoreConformanceTest, ApplyOfEmptyBatchSucceeds) { EXPECT_TRUE(store_->Apply(WriteBatch{}).ok()); }

// ---- Tasks ----

TEST_P(StateStoreConformanceTest, TaskRoundTripsEveryField) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  TaskRecord task{.job_id = job,
                  .group = 3,
                  .replica = 7,
                  .attempt = 2,
                  .node = "gpu-node-17",
                  .placement_json = R"({"devices":["npu:0","npu:1"],"numa":[1],"env":{"K":"v w"}})",
                  .state = TaskState::kFailed,
                  .exit_code = -9,
                  .reason = "OOM killed: \"rank 7\"",
                  .start_ms = 1'700'000'000'000,
                  .end_ms = std::numeric_limits<int64_t>::max(),
                  .max_rss_kib = 3'145'728};
  ExpectApplied(*store_, {.tasks = {task}});
  absl::StatusOr<std::vector<TaskRecord>> tasks = store_->ListTasks(job);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_THAT(*tasks, SizeIs(1));
  EXPECT_EQ(Fields((*tasks)[0]), Fields(task));
}

TEST_P(StateStoreConformanceTest, ApplyUpsertsTaskByKey) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  ExpectApplied(*store_, {.tasks = {MakeTask(job, 0, 0, 0)}});
  TaskRecord running = MakeTask(job, 0, 0, 0, TaskState::kRunning);
  running.start_ms = 5000;
  ExpectApplied(*store_, {.tasks = {running}});
  absl::StatusOr<std::vector<TaskRecord>> tasks = store_->ListTasks(job);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  EXPECT_EQ(Fields(*tasks), Fields(std::vector<TaskRecord>{running}));
}

TEST_P(StateStoreConformanceTest, ListTasksOrdersByAttemptGroupReplica) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  // Written in an order that is neither key order nor the promised order.
  ExpectApplied(*store_, {.tasks = {MakeTask(job, 1, 0, 0), MakeTask(job, 0, 1, 1), MakeTask(job, 0, 1, 0),
                                    MakeTask(job, 0, 0, 1), MakeTask(job, 0, 0, 0)}});
  absl::StatusOr<std::vector<TaskRecord>> tasks = store_->ListTasks(job);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  std::vector<std::tuple<int32_t, int32_t, int32_t>> order;  // (attempt, group, replica)
  for (const TaskRecord& t : *tasks) order.emplace_back(t.attempt, t.group, t.replica);
  EXPECT_THAT(order, ElementsAre(std::make_tuple(0, 0, 0), std::make_tuple(0, 0, 1), std::make_tuple(0, 1, 0),
                                 std::make_tuple(1, 0, 0), std::make_tuple(1, 0, 1)));
}

TEST_P(StateStoreConformanceTest, ListTasksReturnsOnlyThatJob) {
  const int64_t a = Insert(*store_, MakeJob("a"));
  const int64_t b = Insert(*store_, MakeJob("b"));
  ExpectApplied(*store_, {.tasks = {MakeTask(a, 0, 0, 0), MakeTask(b, 0, 0, 0), MakeTask(b, 0, 1, 0)}});
  absl::StatusOr<std::vector<TaskRecord>> tasks = store_->ListTasks(a);
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  ASSERT_THAT(*tasks, SizeIs(1));
  EXPECT_EQ((*tasks)[0].job_id, a);
}

TEST_P(StateStoreConformanceTest, ListActiveTasksReturnsAssignedAndRunningInKeyOrder) {
  const int64_t a = Insert(*store_, MakeJob("a"));
  const int64_t b = Insert(*store_, MakeJob("b"));
  ExpectApplied(*store_,
                {.tasks = {MakeTask(b, 0, 0, 0, TaskState::kRunning), MakeTask(a, 0, 1, 0, TaskState::kAssigned),
                           MakeTask(a, 0, 0, 1, TaskState::kRunning), MakeTask(a, 0, 0, 0, TaskState::kFailed),
                           MakeTask(b, 0, 1, 0, TaskState::kSucceeded), MakeTask(b, 1, 0, 0, TaskState::kKilled)}});
  absl::StatusOr<std::vector<TaskRecord>> tasks = store_->ListActiveTasks();
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  std::vector<std::tuple<int64_t, int32_t, int32_t, int32_t>> keys;  // (job, group, replica, attempt)
  for (const TaskRecord& t : *tasks) keys.emplace_back(t.job_id, t.group, t.replica, t.attempt);
  EXPECT_THAT(keys, ElementsAre(std::make_tuple(a, 0, 0, 1), std::make_tuple(a, 0, 1, 0), std::make_tuple(b, 0, 0, 0)));
}

// ---- Nodes, queues, tokens ----

TEST_P(StateStoreConformanceTest, ApplyUpsertsNodeByName) {
  NodeRecord a{.name = "node-a",
               .spec_json = R"({"devices":[{"vendor":"ascend","model":"910B"}]})",
               .state = "Ready",
               .address = "10.0.0.1",
               .registered_ms = 100,
               .heartbeat_ms = 200};
  NodeRecord b{.name = "node-b", .state = "NotReady", .address = "10.0.0.2"};
  ExpectApplied(*store_, {.nodes = {a, b}});
  a.state = "Drained";
  a.heartbeat_ms = 300;
  ExpectApplied(*store_, {.nodes = {a}});
  absl::StatusOr<std::vector<NodeRecord>> nodes = store_->ListNodes();
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_EQ(Fields(SortedBy(*nodes, [](const NodeRecord& n) { return n.name; })),
            Fields(std::vector<NodeRecord>{a, b}));
}

TEST_P(StateStoreConformanceTest, ApplyUpsertsQueueByName) {
  ExpectApplied(*store_, {.queues = {{.name = "prod", .spec_json = R"({"weight":1})"},
                                     {.name = "dev", .spec_json = R"({"weight":1})"}}});
  ExpectApplied(*store_, {.queues = {{.name = "prod", .spec_json = R"({"weight":4})"}}});
  absl::StatusOr<std::vector<QueueRecord>> queues = store_->ListQueues();
  ASSERT_TRUE(queues.ok()) << queues.status();
  EXPECT_EQ(Fields(SortedBy(*queues, [](const QueueRecord& q) { return q.name; })),
            Fields(std::vector<QueueRecord>{{.name = "dev", .spec_json = R"({"weight":1})"},
                                            {.name = "prod", .spec_json = R"({"weight":4})"}}));
}

TEST_P(StateStoreConformanceTest, ApplyUpsertsServiceById) {
  const std::string text = "{\"name\":\"serve-\u00e9\"}";  // kept byte for byte
  ExpectApplied(*store_, {.services = {{.id = 12, .state_json = R"({"revision":1})"}, {.id = 7, .state_json = text}}});
  ExpectApplied(*store_, {.services = {{.id = 12, .state_json = R"({"revision":2})"}}});
  absl::StatusOr<std::vector<ServiceRecord>> services = store_->ListServices();
  ASSERT_TRUE(services.ok()) << services.status();
  EXPECT_EQ(Fields(*services), Fields(std::vector<ServiceRecord>{{.id = 7, .state_json = text},
                                                                 {.id = 12, .state_json = R"({"revision":2})"}}));
}

TEST_P(StateStoreConformanceTest, DeletedQueuesRemovesQueues) {
  ExpectApplied(*store_, {.queues = {{.name = "a"}, {.name = "b"}, {.name = "c"}}});
  ExpectApplied(*store_, {.deleted_queues = {"a", "c"}});
  absl::StatusOr<std::vector<QueueRecord>> queues = store_->ListQueues();
  ASSERT_TRUE(queues.ok()) << queues.status();
  ASSERT_THAT(*queues, SizeIs(1));
  EXPECT_EQ((*queues)[0].name, "b");
}

TEST_P(StateStoreConformanceTest, DeletingUnknownQueueSucceeds) {
  EXPECT_TRUE(store_->Apply({.deleted_queues = {"never-created"}}).ok());
}

TEST_P(StateStoreConformanceTest, ApplyUpsertsTokenByHash) {
  TokenRecord token{.token_hash = "9f86d081884c7d65", .name = "ci", .role = "user", .user = "alice", .created_ms = 123};
  ExpectApplied(*store_, {.tokens = {token}});
  token.revoked = true;
  token.uid = 1'001;
  token.gid = 1'002;
  token.expires_ms = 1'800'000'000'000;
  token.last_used_ms = 1'700'000'000'000;
  token.node = "gpu-7";
  ExpectApplied(*store_, {.tokens = {token}});
  absl::StatusOr<TokenRecord> got = store_->GetToken(token.token_hash);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(Fields(*got), Fields(token));
}

TEST_P(StateStoreConformanceTest, GetTokenOfUnknownHashIsNotFound) {
  ExpectApplied(*store_, {.tokens = {{.token_hash = "known", .role = "admin"}}});
  EXPECT_EQ(store_->GetToken("unknown").status().code(), absl::StatusCode::kNotFound);
}

TEST_P(StateStoreConformanceTest, ListTokensReturnsEveryToken) {
  TokenRecord admin{.token_hash = "aa", .name = "root", .role = "admin", .created_ms = 1};
  TokenRecord agent{.token_hash = "bb", .name = "node-a", .role = "agent", .created_ms = 2, .revoked = true};
  ExpectApplied(*store_, {.tokens = {agent, admin}});
  absl::StatusOr<std::vector<TokenRecord>> tokens = store_->ListTokens();
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(Fields(SortedBy(*tokens, [](const TokenRecord& t) { return t.token_hash; })),
            Fields(std::vector<TokenRecord>{admin, agent}));
}

// ---- Events ----

TEST_P(StateStoreConformanceTest, ApplyAppendsEventsInBatchOrderWithIncreasingIds) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  absl::StatusOr<std::vector<EventRecord>> before = store_->ListEvents(0, 0, 0);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_THAT(*before, SizeIs(1));  // the Submitted event
  const int64_t submitted_id = (*before)[0].id;

  EventRecord scheduled{.job_id = job, .node = "node-a", .time_ms = 2000, .kind = "Scheduled", .message = "on a"};
  EventRecord joined{.job_id = 0, .node = "node-b", .time_ms = 2001, .kind = "NodeJoined", .message = "8 x NPU"};
  ExpectApplied(*store_, {.events = {scheduled, joined}});

  absl::StatusOr<std::vector<EventRecord>> events = store_->ListEvents(0, submitted_id, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_THAT(*events, SizeIs(2));
  EXPECT_GT((*events)[0].id, submitted_id);
  EXPECT_GT((*events)[1].id, (*events)[0].id);
  // Ids are the store's; every other field is as written.
  scheduled.id = (*events)[0].id;
  joined.id = (*events)[1].id;
  EXPECT_EQ(Fields(*events), Fields(std::vector<EventRecord>{scheduled, joined}));
}

TEST_P(StateStoreConformanceTest, ListEventsOfOneJobExcludesOthers) {
  const int64_t a = Insert(*store_, MakeJob("a"));
  const int64_t b = Insert(*store_, MakeJob("b"));
  ExpectApplied(*store_, {.events = {{.job_id = b, .kind = "Scheduled"},
                                     {.job_id = 0, .kind = "NodeJoined"},
                                     {.job_id = a, .kind = "Scheduled"}}});
  absl::StatusOr<std::vector<EventRecord>> events = store_->ListEvents(a, 0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  std::vector<std::string> kinds;
  for (const EventRecord& e : *events) {
    EXPECT_EQ(e.job_id, a);
    kinds.push_back(e.kind);
  }
  EXPECT_THAT(kinds, ElementsAre("Submitted", "Scheduled"));
}

TEST_P(StateStoreConformanceTest, ListEventsOfOneJobPagesWithAfterIdAndLimit) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  ExpectApplied(
      *store_,
      {.events = {{.job_id = job, .kind = "E1"}, {.job_id = job, .kind = "E2"}, {.job_id = job, .kind = "E3"}}});
  absl::StatusOr<std::vector<EventRecord>> all = store_->ListEvents(job, 0, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(*all, SizeIs(4));  // Submitted, E1, E2, E3
  absl::StatusOr<std::vector<EventRecord>> page = store_->ListEvents(job, (*all)[1].id, 1);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre((*all)[2].id));
}

TEST_P(StateStoreConformanceTest, ListAllEventsPagesWithAfterIdAndLimit) {
  // Three jobs: three Submitted events, then two cluster events.
  for (int i = 0; i < 3; ++i) Insert(*store_, MakeJob(absl::StrCat("j", i)));
  ExpectApplied(*store_, {.events = {{.kind = "NodeJoined"}, {.kind = "NodeLost"}}});
  absl::StatusOr<std::vector<EventRecord>> all = store_->ListEvents(0, 0, 0);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(*all, SizeIs(5));
  for (size_t i = 1; i < all->size(); ++i) EXPECT_LT((*all)[i - 1].id, (*all)[i].id);

  absl::StatusOr<std::vector<EventRecord>> page = store_->ListEvents(0, (*all)[0].id, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre((*all)[1].id, (*all)[2].id));
  page = store_->ListEvents(0, (*all)[2].id, 10);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(Ids(*page), ElementsAre((*all)[3].id, (*all)[4].id));
}

// ---- Concurrency ----

TEST_P(StateStoreConformanceTest, ConcurrentInsertJobGivesEachCallerItsOwnId) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  // ids[t][i]: the id thread t was given for its job i, named "t<t>-<i>".
  std::vector<std::vector<int64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        JobRecord job = MakeJob(absl::StrCat("t", t, "-", i));
        absl::Status status = store_->InsertJob(&job);
        EXPECT_TRUE(status.ok()) << status;
        ids[t].push_back(job.id);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  // 8 x 200 = 1600 distinct ids, 1600 rows, and each id names its caller's job.
  absl::StatusOr<std::vector<JobRecord>> jobs = store_->ListJobs({});
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_THAT(*jobs, SizeIs(kThreads * kPerThread));
  std::map<int64_t, std::string> name_of;
  for (const JobRecord& job : *jobs) name_of[job.id] = job.name;
  std::set<int64_t> distinct;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const int64_t id = ids[t][i];
      distinct.insert(id);
      EXPECT_EQ(name_of[id], absl::StrCat("t", t, "-", i)) << "id " << id;
    }
  }
  EXPECT_EQ(distinct.size(), static_cast<size_t>(kThreads * kPerThread));
  absl::StatusOr<std::vector<EventRecord>> events = store_->ListEvents(0, 0, 0);
  ASSERT_TRUE(events.ok()) << events.status();
  ASSERT_THAT(*events, SizeIs(kThreads * kPerThread));  // one Submitted each
  // ... in the order of their jobs' ids: a reader paging events by id never
  // skips one that commits later with a smaller id.
  for (size_t i = 0; i < events->size(); ++i) EXPECT_EQ((*events)[i].job_id, (*jobs)[i].id) << "event " << i;
}

// ---- Usage, utilisation history, job counts ----

UsageRecord MakeUsage(int64_t job_id, int32_t replica, int64_t start_ms, int64_t end_ms) {
  return UsageRecord{.job_id = job_id,
                     .replica = replica,
                     .user = "alice",
                     .queue = "team-a",
                     .node = "node-a",
                     .start_ms = start_ms,
                     .end_ms = end_ms,
                     .cpu_milli = 2500,
                     .devices_json = R"([{"type":"nvidia/A100","share":0.5}])"};
}

TEST_P(StateStoreConformanceTest, UsageRoundTripsEveryFieldAndUpsertsByKey) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  UsageRecord open = MakeUsage(job, 0, 5000, 0);
  ExpectApplied(*store_, {.usage = {open}});
  UsageRecord closed = open;
  closed.end_ms = 9000;
  ExpectApplied(*store_, {.usage = {closed}});
  absl::StatusOr<std::vector<UsageRecord>> usage = store_->ListUsage(0, 100'000);
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_EQ(Fields(*usage), Fields(std::vector<UsageRecord>{closed}));
}

TEST_P(StateStoreConformanceTest, ListUsageReturnsIntervalsOverlappingTheWindow) {
  const int64_t job = Insert(*store_, MakeJob("a"));
  // Window [10'000, 20'000): replica 0 ended before it, 1 ended at its start
  // (half-open: out), 2 straddles the start, 3 is inside, 4 is still running,
  // 5 starts at its end (out).
  ExpectApplied(*store_, {.usage = {MakeUsage(job, 0, 1000, 5000), MakeUsage(job, 1, 1000, 10'000),
                                    MakeUsage(job, 2, 1000, 15'000), MakeUsage(job, 3, 12'000, 13'000),
                                    MakeUsage(job, 4, 3000, 0), MakeUsage(job, 5, 20'000, 0)}});
  absl::StatusOr<std::vector<UsageRecord>> usage = store_->ListUsage(10'000, 20'000);
  ASSERT_TRUE(usage.ok()) << usage.status();
  std::vector<int32_t> replicas;
  for (const UsageRecord& u : *usage) replicas.push_back(u.replica);
  EXPECT_THAT(replicas, ElementsAre(2, 3, 4));
}

TEST_P(StateStoreConformanceTest, UsageOfUnknownJobIsNotFound) {
  absl::Status status = store_->Apply({.usage = {MakeUsage(999, 0, 1, 2)}});
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound) << status;
}

TEST_P(StateStoreConformanceTest, UtilisationSamplesListByHalfOpenWindowAndPrune) {
  ExpectApplied(*store_, {.samples = {{100, "a"}, {115, "b"}, {130, "c"}}});
  ExpectApplied(*store_, {.samples = {{115, "b2"}}});  // upsert by time
  absl::StatusOr<std::vector<UtilisationSample>> samples = store_->ListUtilisation(100, 130);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(Fields(*samples), Fields(std::vector<UtilisationSample>{{100, "a"}, {115, "b2"}}));
  ExpectApplied(*store_, {.prune_samples_before_s = 115});
  samples = store_->ListUtilisation(0, 1000);
  ASSERT_TRUE(samples.ok()) << samples.status();
  EXPECT_EQ(Fields(*samples), Fields(std::vector<UtilisationSample>{{115, "b2"}, {130, "c"}}));
}

TEST_P(StateStoreConformanceTest, NotificationsAreListedWhenDueAndUpdatedAndDeletedById) {
  ExpectApplied(*store_, {.notifications = {{.job_id = 7, .url = "http://a/x", .body = "{\"n\":1}", .next_ms = 300},
                                            {.job_id = 8, .url = "http://b/y", .body = "{}", .next_ms = 100},
                                            {.job_id = 9, .url = "http://c/z", .body = "{}", .next_ms = 900}}});
  absl::StatusOr<std::vector<NotificationRecord>> due = store_->ListDueNotifications(300, 0);
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 2u);  // soonest first; the one due at 900 is not yet
  EXPECT_EQ((*due)[0].job_id, 8);
  NotificationRecord first = (*due)[1];
  EXPECT_EQ(first.job_id, 7);
  EXPECT_EQ(first.url, "http://a/x");
  EXPECT_EQ(first.body, "{\"n\":1}");
  EXPECT_GT(first.id, 0);

  // A failed try: counted and put off; the one delivered goes.
  first.attempts = 1;
  first.next_ms = 5'000;
  first.last_error = "HTTP 503";
  ExpectApplied(*store_, {.notifications = {first}, .done_notifications = {(*due)[0].id}});
  due = store_->ListDueNotifications(1'000, 10);
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].job_id, 9);
  due = store_->ListDueNotifications(5'000, 1);
  ASSERT_TRUE(due.ok()) << due.status();
  ASSERT_EQ(due->size(), 1u);  // the limit
  EXPECT_EQ((*due)[0].job_id, 9);
  due = store_->ListDueNotifications(5'000, 0);
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[1].attempts, 1);
  EXPECT_EQ((*due)[1].last_error, "HTTP 503");
  EXPECT_EQ(store_->ListDueNotifications(0, -1).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(StateStoreConformanceTest, CountJobsCountsSubmitsAndEndsInTheWindow) {
  // Window [1000, 2000).
  JobRecord a = MakeJob("a", "alice", "q1");  // submitted 1000, succeeded 1500: both count
  JobRecord b = MakeJob("b", "alice", "q1");  // submitted before, failed inside: only the failure
  b.submit_ms = 500;
  JobRecord c = MakeJob("c", "bob", "q2");  // submitted inside, cancelled after: only the submit
  JobRecord d = MakeJob("d", "bob", "q2");  // entirely before: absent
  d.submit_ms = 100;
  const int64_t ia = Insert(*store_, a), ib = Insert(*store_, b), ic = Insert(*store_, c), id = Insert(*store_, d);
  a.id = ia, b.id = ib, c.id = ic, d.id = id;
  a.state = JobState::kSucceeded, a.end_ms = 1500;
  b.state = JobState::kFailed, b.end_ms = 1999;
  a.lost_device_ms = 7, b.lost_device_ms = 30;  // both ended in the window
  c.state = JobState::kCancelled, c.end_ms = 2000;
  c.lost_device_ms = 1'000;  // ended after it
  d.state = JobState::kSucceeded, d.end_ms = 200;
  ExpectApplied(*store_, {.jobs = {a, b, c, d}});
  absl::StatusOr<std::vector<JobCounts>> counts = store_->CountJobs(1000, 2000);
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(Fields(*counts),
            Fields(std::vector<JobCounts>{{"alice", "q1", 1, 1, 1, 0, 37}, {"bob", "q2", 1, 0, 0, 0, 0}}));
}

TEST_P(StateStoreConformanceTest, CountJobsByStateCountsEveryJob) {
  JobRecord a = MakeJob("a");
  const int64_t ia = Insert(*store_, a);
  Insert(*store_, MakeJob("b"));
  Insert(*store_, MakeJob("c"));
  a.id = ia;
  a.state = JobState::kRunning;
  ExpectApplied(*store_, {.jobs = {a}});
  absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> counts = store_->CountJobsByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  std::map<std::string, int64_t> by_name;
  for (const auto& [state, n] : *counts) by_name[JobStateName(state)] = n;
  EXPECT_EQ(by_name, (std::map<std::string, int64_t>{{"Pending", 2}, {"Running", 1}}));
}

TEST_P(StateStoreConformanceTest, SchemaVersionIsPositive) { EXPECT_GT(store_->SchemaVersion(), 0); }

// ---- Leadership ----

auto Fields(const LeaderRecord& l) { return std::make_tuple(l.epoch, l.holder, l.url, l.since_ms); }

TEST_P(StateStoreConformanceTest, NoLeaderBeforeAnyoneLeads) {
  absl::StatusOr<LeaderRecord> leader = store_->GetLeader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(Fields(*leader), Fields(LeaderRecord{}));
  EXPECT_EQ(store_->CheckLeadership().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_P(StateStoreConformanceTest, TryLeadTakesAFreeStoreAndRecordsTheLeader) {
  absl::StatusOr<LeadResult> lead = store_->TryLead({.holder = "host-a:1", .url = "http://a:7070", .since_ms = 5});
  ASSERT_TRUE(lead.ok()) << lead.status();
  EXPECT_TRUE(lead->acquired);
  EXPECT_EQ(Fields(lead->leader), Fields(LeaderRecord{1, "host-a:1", "http://a:7070", 5}));
  absl::StatusOr<LeaderRecord> leader = store_->GetLeader();
  ASSERT_TRUE(leader.ok()) << leader.status();
  EXPECT_EQ(Fields(*leader), Fields(lead->leader));
  EXPECT_TRUE(store_->CheckLeadership().ok()) << store_->CheckLeadership();
  // Leading again is a no-op; the leader's own writes pass the fence.
  absl::StatusOr<LeadResult> again = store_->TryLead({.holder = "host-a:1", .url = "http://a:7070", .since_ms = 9});
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->acquired);
  EXPECT_EQ(again->leader.epoch, 1);
  JobRecord job = MakeJob("led");
  job.id = Insert(*store_, job);
  job.state = JobState::kRunning;
  ExpectApplied(*store_, {.jobs = {job}});
}

TEST_P(SharedStoreConformanceTest, SecondStoreLeadsOnlyOnceTheFirstIsGone) {
  ASSERT_NE(GetParam().make_shared, nullptr) << GetParam().name << " has no make_shared";
  StoreFactory open = GetParam().make_shared();
  std::unique_ptr<StateStore> a = open();
  std::unique_ptr<StateStore> b = open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  absl::StatusOr<LeadResult> first = a->TryLead({.holder = "a", .url = "http://a", .since_ms = 1});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(first->acquired);
  absl::StatusOr<LeadResult> refused = b->TryLead({.holder = "b", .url = "http://b", .since_ms = 2});
  ASSERT_TRUE(refused.ok()) << refused.status();
  EXPECT_FALSE(refused->acquired);
  EXPECT_EQ(Fields(refused->leader), Fields(first->leader));  // a standby learns who leads
  EXPECT_EQ(b->CheckLeadership().code(), absl::StatusCode::kFailedPrecondition);

  const int64_t id = Insert(*a, MakeJob("before"));
  a.reset();  // the leader's process ends
  absl::StatusOr<LeadResult> taken = b->TryLead({.holder = "b", .url = "http://b", .since_ms = 3});
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_TRUE(taken->acquired);
  EXPECT_EQ(Fields(taken->leader), Fields(LeaderRecord{2, "b", "http://b", 3}));
  EXPECT_TRUE(b->CheckLeadership().ok());
  absl::StatusOr<JobRecord> kept = b->GetJob(id);  // the new leader sees all the old one wrote
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(kept->name, "before");
  EXPECT_GT(Insert(*b, MakeJob("after")), id);
}

}  // namespace
}  // namespace icos::store
