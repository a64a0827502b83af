// Control of queued work and dependencies, through the controller: hold and
// release, requeue, update, after_ok / after_any / after_not_ok chains, and
// what a restart keeps of them.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"
#include "controller/controller_test_util.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// A one-task job named `name`, with extra top-level spec lines.
std::string Job(const std::string& name, const std::string& extra = "") {
  return absl::StrCat("name: ", name, "\n", extra,
                      "tasks: [{command: [\"true\"], resources: {cpu: 1, memory: 1Gi}}]\n");
}

class ControllerQueuedTest : public ControllerTest {
 protected:
  void SetUp() override {
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  }
  int64_t Submit(const std::string& spec, const Principal* who = nullptr, bool hold = false) {
    auto id = controller_->Submit(who ? *who : alice_, spec, SubmitOptions{.hold = hold});
    EXPECT_TRUE(id.ok()) << id.status();
    return id.ok() ? *id : 0;
  }
  std::string Reason(int64_t id) {
    auto j = controller_->GetJob(admin_, id);
    return j.ok() ? j->job.reason : std::string(j.status().message());
  }
  // Runs a pass, then ends the first attempt-`attempt` task of job `id` as `state`.
  void Finish(int64_t id, const std::string& state, int32_t attempt = 0) {
    Report("n1", wire::TaskId(id, 0, 0, attempt), state, state == "Succeeded" ? 0 : 1);
  }
};

TEST_F(ControllerQueuedTest, AChainRunsInOrder) {
  const int64_t a = Submit(Job("a"));
  const int64_t b = Submit(Job("b", absl::StrCat("dependencies: {after_ok: [", a, "]}\n")));
  const int64_t c = Submit(Job("c", absl::StrCat("dependencies: {after_any: [", b, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(a), "Running");
  ASSERT_TRUE(controller_->RunPass().ok());  // reasons are as of a pass's start
  EXPECT_EQ(State(b), "Pending");
  EXPECT_EQ(Reason(b), absl::StrCat("Dependency: waiting for job ", a, " (Running) to succeed"));
  EXPECT_EQ(Reason(c), absl::StrCat("Dependency: waiting for job ", b, " (Pending) to end"));
  Finish(a, "Succeeded");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(b), "Running");  // `a` left memory as it ended; its end was kept
  EXPECT_EQ(State(c), "Pending");
  Finish(b, "Failed");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(c), "Running");  // after_any: however it ended
}

// after_ok on a job that failed can never be met: the dependent is
// cancelled, saying why, and so is what depends on it in turn.
TEST_F(ControllerQueuedTest, AFailureCancelsTheChainBehindIt) {
  const int64_t a = Submit(Job("a"));
  const int64_t b = Submit(Job("b", absl::StrCat("dependencies: {after_ok: [", a, "]}\n")));
  const int64_t c = Submit(Job("c", absl::StrCat("dependencies: {after_ok: [", b, "]}\n")));
  const int64_t waits = Submit(Job("w", absl::StrCat("dependencies: {after_ok: [", a, "], if_unmet: wait}\n")));
  const int64_t rescue = Submit(Job("r", absl::StrCat("dependencies: {after_not_ok: [", a, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  Finish(a, "Failed");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(b), "Cancelled");
  EXPECT_EQ(Reason(b), absl::StrCat("dependency never satisfied: job ", a, " Failed, so after_ok cannot be met"));
  EXPECT_EQ(State(rescue), "Running");
  EXPECT_EQ(State(waits), "Pending");
  EXPECT_THAT(Reason(waits), StartsWith(absl::StrCat("DependencyNeverSatisfied: job ", a, " Failed")));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(c), "Cancelled");
  EXPECT_THAT(Reason(c), HasSubstr(absl::StrCat("job ", b, " Cancelled")));
}

TEST_F(ControllerQueuedTest, SubmitRefusesDependenciesItCannotHave) {
  const int64_t bobs = Submit(Job("b"), &bob_);
  auto unknown = controller_->Submit(alice_, Job("x", "dependencies: {after_ok: [999]}\n"));
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(unknown.status().message(), "dependencies: no job 999");
  // Another user's job is as unknown as one that does not exist.
  auto other = controller_->Submit(alice_, Job("x", absl::StrCat("dependencies: {after_ok: [", bobs, "]}\n")));
  EXPECT_EQ(other.status().message(), absl::StrCat("dependencies: no job ", bobs));
  const int64_t a = Submit(Job("a"));
  ASSERT_TRUE(controller_->Cancel(alice_, a).ok());
  auto late = controller_->Submit(alice_, Job("x", absl::StrCat("dependencies: {after_ok: [", a, "]}\n")));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(late.status().message(), absl::StrCat("dependencies: job ", a, " Cancelled, so after_ok cannot be met"));
  EXPECT_TRUE(controller_->Submit(alice_, Job("x", absl::StrCat("dependencies: {after_any: [", a, "]}\n"))).ok());
}

// A restarted controller finds how the jobs ended that its open jobs depend on.
TEST_F(ControllerQueuedTest, DependenciesSurviveARestart) {
  const int64_t a = Submit(Job("a"));
  const int64_t fails = Submit(Job("f"));
  const int64_t b = Submit(Job("b", absl::StrCat("dependencies: {after_ok: [", a, "]}\n")), nullptr, /*hold=*/true);
  const int64_t c = Submit(Job("c", absl::StrCat("dependencies: {after_ok: [", fails, "]}\n")), nullptr, true);
  ASSERT_TRUE(controller_->RunPass().ok());
  Finish(a, "Succeeded");
  Finish(fails, "Failed");
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->Hold(alice_, b, false).ok());
  ASSERT_TRUE(controller_->Hold(alice_, c, false).ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(b), "Running");
  EXPECT_EQ(State(c), "Cancelled");
}

TEST_F(ControllerQueuedTest, AHeldJobWaitsUntilReleasedAndAnAdminsHoldIsTheAdmins) {
  const int64_t id = Submit(Job("a"), nullptr, /*hold=*/true);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Pending");
  EXPECT_EQ(Reason(id), absl::StrCat("Held: by its owner (icos release ", id, ")"));
  EXPECT_EQ(controller_->Hold(alice_, id, true).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(controller_->Hold(bob_, id, false).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(controller_->Hold(alice_, id, false).ok());
  ASSERT_TRUE(controller_->Hold(admin_, id, true).ok());
  EXPECT_EQ(controller_->Hold(alice_, id, false).code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(Reason(id), absl::StrCat("Held: by an admin (icos release ", id, ")"));
  Open();  // the hold is durable
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Pending");
  ASSERT_TRUE(controller_->Hold(admin_, id, false).ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Running");
  EXPECT_EQ(controller_->Hold(alice_, id, true).code(), absl::StatusCode::kFailedPrecondition);  // running
}

// A requeued job stops, and runs again as its next attempt once its tasks
// have stopped (never twice at once), with no retry spent.
TEST_F(ControllerQueuedTest, RequeueStopsAndRunsAgain) {
  const int64_t id = Submit(Job("a"));
  EXPECT_EQ(controller_->RequeueJob(alice_, id, false).code(), absl::StatusCode::kFailedPrecondition);  // pending
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_TRUE(controller_->RequeueJob(alice_, id, false).ok());
  EXPECT_EQ(State(id), "Pending");
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_FALSE(tasks[0].run);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Pending");  // its first attempt still runs
  Finish(id, "Killed");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Running");
  EXPECT_EQ(controller_->GetJob(admin_, id)->job.attempt, 1);
  ASSERT_TRUE(controller_->RequeueJob(alice_, id, /*hold=*/true).ok());
  Finish(id, "Killed", 1);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(id), "Pending");
  EXPECT_THAT(Reason(id), StartsWith("Held:"));
}

TEST_F(ControllerQueuedTest, UpdateKeepsTheSpecsRules) {
  const int64_t id = Submit(Job("a", "time_limit: 2h\n"), nullptr, /*hold=*/true);
  EXPECT_EQ(controller_->Update(alice_, id, {}).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(controller_->Update(alice_, id, {.priority = 5}).code(), absl::StatusCode::kPermissionDenied);
  auto too_long = controller_->Update(alice_, id, {.runtime_estimate_s = 3 * 3600});
  EXPECT_THAT(too_long.message(), HasSubstr("is above the time limit"));
  ASSERT_TRUE(controller_->Update(alice_, id, {.priority = -3, .time_limit_s = 600, .runtime_estimate_s = 300}).ok());
  Open();  // durable, in the spec the job keeps
  auto v = controller_->GetJob(admin_, id);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->job.priority, -3);
  EXPECT_THAT(v->job.spec_json, HasSubstr(R"("time_limit":"10m","runtime_estimate":"5m")"));
  EXPECT_EQ(v->estimate.seconds, 300);
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->Hold(alice_, id, false).ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].time_limit_s, 600);  // the agent enforces the new limit
  EXPECT_EQ(controller_->Update(alice_, id, {.time_limit_s = 60}).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(controller_->Update(alice_, id, {.priority = -5}).ok());  // a running job's priority may change
}

// Priority classes (Kubernetes' PriorityClass, per queue, set by an admin):
// a job naming one gets its priority past the queue's max_priority, one
// naming neither gets the queue's default, and a class that may not preempt
// makes its jobs wait rather than stop others.
TEST_F(ControllerQueuedTest, APriorityClassSetsThePriorityAndWhetherItPreempts) {
  core::Queue q{.name = "team"};
  q.priority_classes = {
      {"serving", {.priority = 100}}, {"polite", {.priority = 100, .preempts = false}}, {"batch", {.priority = 0}}};
  q.default_priority_class = "batch";
  ASSERT_TRUE(controller_->PutQueue(admin_, q).ok());
  // Errors first: each says what exists or what to do.
  auto unknown = controller_->Submit(alice_, Job("x", "queue: team\npriority_class: gold\n"), SubmitOptions{});
  EXPECT_THAT(unknown.status().message(), HasSubstr("no priority class 'gold'; it has batch, polite, serving"));
  auto both =
      controller_->Submit(alice_, Job("x", "queue: team\npriority_class: serving\npriority: 5\n"), SubmitOptions{});
  EXPECT_THAT(both.status().message(), HasSubstr("not both (class 'serving' is priority 100)"));
  auto none = controller_->Submit(alice_, Job("x", "priority_class: serving\n"), SubmitOptions{});
  EXPECT_THAT(none.status().message(), HasSubstr("it defines none"));
  EXPECT_EQ(controller_->Submit(alice_, Job("x", "queue: team\npriority: 5\n"), SubmitOptions{}).status().code(),
            absl::StatusCode::kPermissionDenied);  // no class: max_priority (0) holds
  // Eight low jobs fill n1's 8 CPUs (the default class, priority 0).
  std::vector<int64_t> low;
  for (int i = 0; i < 8; ++i) low.push_back(Submit(Job(absl::StrCat("low", i), "queue: team\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  auto first = controller_->GetJob(admin_, low[0]);
  EXPECT_EQ(first->job.state, store::JobState::kRunning);
  EXPECT_THAT(first->job.spec_json, HasSubstr(R"("priority":0,"priority_class":"batch")"));
  // A polite job of priority 100 waits; a serving one preempts.
  const int64_t polite = Submit(Job("polite", "queue: team\npriority_class: polite\n"));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(controller_->GetJob(admin_, polite)->job.state, store::JobState::kPending);
  EXPECT_EQ(controller_->GetJob(admin_, polite)->job.priority, 100);
  const int64_t serving = Submit(Job("serving", "queue: team\npriority_class: serving\n"));
  ASSERT_TRUE(controller_->RunPass().ok());
  int preempted = 0;
  for (int64_t id : low) preempted += controller_->GetJob(admin_, id)->job.state == store::JobState::kPending;
  EXPECT_EQ(preempted, 1) << Reason(serving) << " / " << Reason(polite);
  Open();  // the class's priority is the job's own, durably
  EXPECT_EQ(controller_->GetJob(admin_, serving)->job.priority, 100);
  // The class is the admin's: its owner may not give the job another priority.
  EXPECT_EQ(controller_->Update(alice_, serving, {.priority = 0}).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(controller_->Update(admin_, serving, {.priority = 7}).ok());
  EXPECT_THAT(controller_->GetJob(admin_, serving)->job.spec_json, Not(HasSubstr("priority_class")));
}

// An array is one job per index, inserted as one; at most its %N run at
// once, each told its index; a retry with its key makes no second array.
TEST_F(ControllerQueuedTest, AnArrayRunsItsThrottleAtOnceEachToldItsIndex) {
  bool replayed = false;
  auto first =
      controller_->Submit(alice_, Job("arr", "array: 0-4%2\n"), SubmitOptions{.idempotency_key = "k"}, &replayed);
  ASSERT_TRUE(first.ok()) << first.status();
  auto again =
      controller_->Submit(alice_, Job("arr", "array: 0-4%2\n"), SubmitOptions{.idempotency_key = "k"}, &replayed);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(replayed);
  EXPECT_EQ(*again, *first);
  auto listed = controller_->ListJobs(alice_, {.array_id = *first});
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->size(), 5u);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ((*listed)[i].array_id, *first);
    EXPECT_EQ((*listed)[i].array_index, i);
  }
  ASSERT_TRUE(controller_->RunPass().ok());
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);  // the node has room for all five; the array allows two
  EXPECT_EQ(tasks[0].env.at("ICOS_ARRAY_INDEX"), "0");
  EXPECT_EQ(tasks[1].env.at("ICOS_ARRAY_INDEX"), "1");
  EXPECT_EQ(tasks[0].env.at("ICOS_ARRAY_JOB_ID"), absl::StrCat(*first));
  EXPECT_EQ(tasks[0].env.at("ICOS_ARRAY_COUNT"), "5");
  EXPECT_EQ(Reason(*first + 2), absl::StrCat("ArrayThrottle: 2 of array ", *first, " run at once (its %2)"));
  Finish(*first, "Succeeded");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*first + 2), "Running");
  EXPECT_EQ(State(*first + 3), "Pending");
  // --array in place of the spec's own.
  auto flagged = controller_->Submit(alice_, Job("flag"), SubmitOptions{.array = "7,9"});
  ASSERT_TRUE(flagged.ok()) << flagged.status();
  EXPECT_EQ(controller_->ListJobs(alice_, {.array_id = *flagged})->size(), 2u);
  EXPECT_EQ(controller_->Submit(alice_, Job("bad"), SubmitOptions{.array = "9-7"}).status().message(),
            "array: '9-7' is out of order or outside 0-10000000; use e.g. 0-99, 1,3,5-9 or 0-98:2, optionally "
            "ending %N");
}

// A dependency on an array's id is on every element (Slurm's afterok on an
// array job): the dependent starts once the last one succeeded, and one
// failed element is enough to cancel an after_ok dependent.
TEST_F(ControllerQueuedTest, ADependencyOnAnArrayWaitsForEveryElement) {
  const int64_t arr = Submit(Job("arr", "array: 0-2\n"));
  const int64_t after = Submit(Job("after", absl::StrCat("dependencies: {after_ok: [", arr, "]}\n")));
  const int64_t any = Submit(Job("any", absl::StrCat("dependencies: {after_any: [", arr, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  Finish(arr, "Succeeded");
  Finish(arr + 1, "Succeeded");
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(after), "Pending");  // the element with index 2 still runs
  EXPECT_EQ(Reason(after), absl::StrCat("Dependency: waiting for job ", arr + 2, " (Running) to succeed"));
  Finish(arr + 2, "Succeeded");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(after), "Running");
  EXPECT_EQ(State(any), "Running");

  const int64_t arr2 = Submit(Job("arr2", "array: 0-1\n"));
  const int64_t ok2 = Submit(Job("ok2", absl::StrCat("dependencies: {after_ok: [", arr2, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  Finish(arr2 + 1, "Failed");
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(ok2), "Cancelled");
  EXPECT_THAT(Reason(ok2), HasSubstr(absl::StrCat("job ", arr2 + 1, " Failed")));
  // An element's own id still names that element alone.
  const int64_t one = Submit(Job("one", absl::StrCat("dependencies: {after_ok: [", arr + 1, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(one), "Running");
}

// Each element of an array keeps the spec (a dependency on an array adds
// every element's id to it): what one submission keeps is bounded, not
// left to fill the controller's memory and store.
TEST_F(ControllerQueuedTest, AnArrayKeepsItsSpecABoundedNumberOfTimes) {
  options_.spec_limits.max_array_spec_bytes = 4 << 20;
  Open();
  const int64_t arr = Submit(Job("arr", "array: 0-1999\n"));
  auto big =
      controller_->Submit(alice_, Job("big", absl::StrCat("array: 0-999\ndependencies: {after_ok: [", arr, "]}\n")));
  ASSERT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(big.status().message()),
      ::testing::MatchesRegex("each of its 1000 elements would keep its [0-9]+-byte spec .* this cluster's "
                              "limit is 4 MiB.*an array may depend on one job that depends on another array.*"));
  const int64_t small = Submit(Job("small", absl::StrCat("array: 0-99\ndependencies: {after_ok: [", arr, "]}\n")));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(small), "Pending");
  EXPECT_THAT(Reason(small), HasSubstr("Dependency: waiting for job"));
  // A large env on a large array, likewise.
  const std::string env(64 << 10, 'x');
  auto fat = controller_->Submit(alice_, Job("fat", absl::StrCat("array: 0-99\nenv: {BIG: ", env, "}\n")));
  EXPECT_THAT(std::string(fat.status().message()), HasSubstr("each of its 100 elements would keep its"));
}

// An array stored before its text was bounded (written as runs only, past
// today's limit for a submission) still loads when the controller restarts.
TEST_F(ControllerQueuedTest, AnArrayStoredBeforeTheTextBoundLoads) {
  std::string runs;  // 0,1,4,9,...: 400 indices no range or step shortens
  for (int i = 0; i < 400; ++i) absl::StrAppend(&runs, i == 0 ? "" : ",", i * i);
  const int64_t id = Submit(Job("old", "array: 0-3\n"));
  auto rows = store_->ListJobs(store::JobQuery{.array_id = id});
  ASSERT_TRUE(rows.ok());
  std::vector<store::JobRecord> old = *rows;
  for (store::JobRecord& r : old) {
    r.spec_json.replace(r.spec_json.find(R"("array":"0-3")"), 13, absl::StrCat(R"("array":")", runs, R"(")"));
  }
  ASSERT_TRUE(store_->Apply(store::WriteBatch{.jobs = old}).ok());
  Open();
  auto v = controller_->GetJob(admin_, id);
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->job.state, store::JobState::kPending);
  EXPECT_THAT(v->job.spec_json, HasSubstr(runs));
}

// Forecasts come from a pass's own snapshot: a job waiting behind a 10-minute
// one is forecast to start when that one ends; a held job gets none.
TEST_F(ControllerTest, PendingJobsGetAStartForecastFromThePassesSnapshot) {
  options_.forecast.exact_estimates = true;
  options_.forecast.samples = 1;
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("g1", 1), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  const std::string gpu =
      "tasks: [{command: [\"true\"], resources: {cpu: 1, memory: 1Gi, devices: 1}}]\nruntime_estimate: 10m\n";
  auto first = controller_->Submit(alice_, gpu);
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_EQ(State(*first), "Running");
  const int64_t t0 = clock_.NowMs();
  Report("g1", wire::TaskId(*first, 0, 0, 0), "Running");  // it started at t0
  auto second = controller_->Submit(alice_, gpu);
  auto held = controller_->Submit(alice_, gpu, SubmitOptions{.hold = true});
  clock_.Advance(60'000);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(controller_->RefreshForecasts().value(), true);
  EXPECT_EQ(controller_->RefreshForecasts().value(), false);  // nothing new offered
  auto f = controller_->Forecasts({*second, *held});
  ASSERT_EQ(f.count(*second), 1u);
  EXPECT_EQ(f.at(*second).p50_ms, t0 + 600'000);
  EXPECT_EQ(f.count(*held), 0u);
  EXPECT_EQ(controller_->ForecastsMadeMs(), t0 + 60'000);
}

// Every job runs three times its 10-minute estimate: each forecast of "the
// job ahead ends at its estimate" is early by the same factor. Once three
// started jobs have shown it, forecasts are moved to when jobs really start.
TEST_F(ControllerTest, ForecastsLearnFromWhatBecameOfEarlierOnes) {
  options_.forecast.exact_estimates = true;
  options_.forecast.samples = 1;
  options_.forecast_calibration.min_observations = 3;
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("g1", 1), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  const std::string gpu =
      "tasks: [{command: [\"true\"], resources: {cpu: 1, memory: 1Gi, devices: 1}}]\nruntime_estimate: 10m\n";
  constexpr int64_t kRunMs = 30 * 60'000;
  auto running = controller_->Submit(alice_, gpu);
  ASSERT_TRUE(controller_->RunPass().ok());
  Report("g1", wire::TaskId(*running, 0, 0, 0), "Running");
  std::vector<int64_t> waits;  // forecast P50 - now, for each next job when submitted
  for (int k = 0; k < 5; ++k) {
    auto next = controller_->Submit(alice_, gpu);
    clock_.Advance(30'000);                    // a refresh is due
    ASSERT_TRUE(controller_->RunPass().ok());  // offers its snapshot: the next job waits
    ASSERT_EQ(controller_->RefreshForecasts().value(), true);
    auto f = controller_->Forecasts({*next});
    ASSERT_EQ(f.count(*next), 1u);
    waits.push_back(f.at(*next).p50_ms - clock_.NowMs());
    clock_.Advance(kRunMs - 30'000);
    Report("g1", wire::TaskId(*running, 0, 0, 0), "Succeeded");
    ASSERT_TRUE(controller_->RunPass().ok());
    ASSERT_EQ(State(*next), "Running");
    Report("g1", wire::TaskId(*next, 0, 0, 0), "Running");
    running = next;
  }
  // Uncalibrated: the job ahead started 30 s ago with an estimate of 10 minutes.
  EXPECT_EQ(waits[0], 10 * 60'000 - 30'000);
  EXPECT_EQ(waits[1], 10 * 60'000 - 30'000);
  // Each refresh sees that the job before started 30 minutes after it
  // arrived, not 10: from the fourth on, three such starts calibrate.
  EXPECT_NEAR(static_cast<double>(waits[4]), static_cast<double>(kRunMs - 30'000), 1'000.0);
}

}  // namespace
}  // namespace icos::controller
