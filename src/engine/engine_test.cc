// The cluster engine on its own: no store, no clock, no threads. Each test
// drives it as the controller does (commands, then Adopt of what would have
// been committed) and checks the lifecycle rules it owns.
#include "engine/engine.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/scheduler.h"
#include "engine/dependencies.h"

namespace icos::engine {
namespace {

using store::JobState;
using store::TaskState;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

NodeEntry Node(const std::string& name, int gpus) {
  NodeEntry n;
  n.rec.name = name;
  n.rec.state = "Ready";
  n.node.name = name;
  n.node.cpu_milli = 8'000;
  n.node.memory_mib = 16'384;
  for (int i = 0; i < gpus; ++i) {
    core::Device d;
    d.vendor = "nvidia";
    d.model = "A100";
    d.memory_mib = 81'920;
    n.node.devices.push_back(d);
  }
  return n;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : engine_(EngineOptions{.restart_backoff_ms = 10'000, .node_lease_ms = 60'000}) {
    engine_.nodes()["n1"] = Node("n1", 2);
  }

  // A job of `replicas` one-GPU tasks, as a submission adds it.
  int64_t Add(const std::string& extra = "", int replicas = 1) {
    const int64_t id = next_id_++;
    auto spec = api::ParseJobSpec(absl::StrCat("name: j", id, "\n", extra, "tasks: [{replicas: ", replicas,
                                               ", command: [\"true\"], resources: {cpu: 1, memory: 1Gi, "
                                               "devices: 1}}]\n"));
    EXPECT_TRUE(spec.ok()) << spec.status();
    JobEntry j;
    j.spec = *spec;
    j.rec.id = id;
    j.rec.user = "alice";
    j.rec.queue = j.spec.queue;
    j.rec.state = JobState::kPending;
    j.core = api::ToCoreJob(j.spec, JobId(id), "alice", 0);
    engine_.NoteDependencies(j, +1);
    engine_.AddJob(std::move(j));
    return id;
  }

  // What a pass's input tells the scheduler, field by field (doubles to the bit).
  static std::string Describe(const PassInput& in) {
    std::string out = absl::StrCat("now=", in.snap.now_ms, " nodes=", absl::StrJoin(in.node_names, ","), "\n");
    for (const core::RunningJob& r : in.snap.running) {
      absl::StrAppendFormat(&out, "running %d attained=%a start=%d estimate=%d interruptions=%d preemptible=%d tasks=",
                            r.job.id.value(), r.job.attained_device_s, r.start_ms, r.job.runtime_estimate_ms,
                            r.job.recent_interruptions, r.job.preemptible);
      for (const core::TaskPlacement& t : r.tasks) {
        absl::StrAppend(&out, t.group, "/", t.replica, "@", t.node, ":");
        for (const core::DeviceSlice& d : t.devices) absl::StrAppend(&out, d.device, "x", d.percent, " ");
      }
      absl::StrAppend(&out, "\n");
    }
    for (const core::Job& j : in.snap.pending) {
      absl::StrAppendFormat(&out, "pending %d attained=%a estimate=%d attempt=%d revision=%d\n", j.id.value(),
                            j.attained_device_s, j.runtime_estimate_ms, in.pending_attempt.at(j.id.value()),
                            in.pending_revision.at(j.id.value()));
    }
    std::map<int64_t, int32_t> running(in.running_attempt.begin(), in.running_attempt.end());
    for (const auto& [id, attempt] : running) absl::StrAppend(&out, "runs ", id, " attempt ", attempt, "\n");
    return out;
  }

  // A pass's input, as kept between passes (views, and the last pass's
  // input refilled), and again from scratch: they must agree (what
  // BeginPass keeps is only ever a cache).
  // BeginPass must change nothing readers see (the controller lets them
  // in while it runs): every job's reason is as it was.
  PassInput BeginPassChecked(int64_t now) {
    std::map<int64_t, std::string> reasons;
    for (const auto& [id, j] : engine_.jobs()) reasons[id] = j.rec.reason;
    PassInput kept = engine_.BeginPass(now);
    for (const auto& [id, j] : engine_.jobs()) EXPECT_EQ(j.rec.reason, reasons[id]) << "job " << id << " at " << now;
    engine_.ForgetPassViews();
    PassInput fresh = engine_.BeginPass(now);
    EXPECT_EQ(Describe(kept), Describe(fresh)) << "at " << now;
    return kept;
  }

  // One pass at `now`, its change adopted (as if committed).
  PassOutcome Pass(int64_t now) {
    PassInput in = BeginPassChecked(now);
    engine_.SetReasons(in.held_back);
    auto decisions = scheduler_.Schedule(in.snap);
    EXPECT_TRUE(decisions.ok()) << decisions.status();
    BindWork work = engine_.PrepareBinds(in, *decisions);
    engine_.MakeTasks(in, work);
    PassOutcome out = engine_.ApplyPass(in, *decisions, std::move(work), now);
    PassOutcome copy = out;
    engine_.Adopt(std::move(out.change));
    engine_.SetReasons(engine_.WaitingReasons(*decisions, now));
    engine_.RecyclePass(std::move(in));  // the next pass refills it: checked against one from scratch
    ExpectQueueLoadsAsSummed();
    return copy;
  }

  // An agent's report of task `replica` of job `id` (attempt `attempt`) on n1.
  bool Report(int64_t id, int32_t replica, const std::string& state, int64_t now, int32_t attempt = 0) {
    wire::TaskStatus s;
    s.task_id = wire::TaskId(id, 0, replica, attempt);
    s.state = state;
    s.exit_code = state == "Succeeded" ? 0 : 1;
    s.end_ms = store::IsTerminal(*store::ParseTaskState(state)) ? now : 0;
    // The agent lists every task it holds: the others of n1 are running.
    std::vector<wire::TaskStatus> all = {s};
    for (int64_t other : engine_.JobsOnNode("n1")) {
      for (const TaskEntry& t : engine_.FindJob(other)->tasks) {
        if (t.rec.state == TaskState::kRunning && t.assignment.task_id != s.task_id) {
          all.push_back({.task_id = t.assignment.task_id, .state = "Running"});
        }
      }
    }
    Change c(now);
    const bool changed = engine_.ApplyTaskReports("n1", all, c);
    last_touched_ = engine_.Adopt(std::move(c));
    ExpectQueueLoadsAsSummed();
    return changed;
  }

  JobState State(int64_t id) { return engine_.FindJob(id)->rec.state; }

  // The engine's queue index against a sum over every job, devices as the
  // nodes have them now (every Pass and Report checks it).
  void ExpectQueueLoadsAsSummed() {
    if (!check_queue_loads_) return;
    std::map<std::string, Engine::QueueLoad> want;
    for (const auto& [id, j] : engine_.jobs()) {
      Engine::QueueLoad& load = want[j.rec.queue.empty() ? "default" : j.rec.queue];
      load.pending += j.rec.state == JobState::kPending ? 1 : 0;
      load.running += j.rec.state == JobState::kRunning ? 1 : 0;
      for (const TaskEntry& t : j.tasks) {
        if (!store::IsActive(t.rec.state)) continue;
        load.used["cpu"] += t.placement.cpu_milli;
        load.used["memory"] += t.placement.memory_mib;
        for (const core::DeviceSlice& d : t.placement.devices) {
          const core::Device& dev = engine_.nodes().at(t.rec.node).node.devices.at(d.device);
          load.used["devices"] += d.percent * 10;
          load.used[dev.vendor] += d.percent * 10;
          load.used[dev.vendor + "/" + dev.model] += d.percent * 10;
        }
      }
    }
    std::erase_if(
        want, [](const auto& q) { return q.second.pending == 0 && q.second.running == 0 && q.second.used.empty(); });
    ASSERT_EQ(engine_.QueueLoads().size(), want.size());
    for (const auto& [name, load] : want) {
      auto it = engine_.QueueLoads().find(name);
      ASSERT_NE(it, engine_.QueueLoads().end()) << name;
      EXPECT_EQ(it->second.pending, load.pending) << name;
      EXPECT_EQ(it->second.running, load.running) << name;
      EXPECT_EQ(it->second.used, load.used) << name;
    }
  }

  Engine engine_;
  std::set<std::string> last_touched_;  // what the last Report's Adopt said moved
  bool check_queue_loads_ = true;       // false: a test changed a node's devices under its tasks
  core::Scheduler scheduler_ = *core::Scheduler::Create({});
  int64_t next_id_ = 1;
};

TEST_F(EngineTest, AGangRunsAndSucceedsAndLeavesTheIndex) {
  const int64_t id = Add("", 2);
  EXPECT_EQ(Pass(1'000).binds, 1);
  EXPECT_EQ(State(id), JobState::kRunning);
  EXPECT_THAT(engine_.JobsOnNode("n1"), ElementsAre(id));
  // Both ranks are sent to run, each told its rank's environment.
  std::vector<wire::Assignment> sent = engine_.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_TRUE(sent[0].run && sent[1].run);
  EXPECT_EQ(sent[1].env.at("ICOS_RANK"), "1");
  EXPECT_NE(sent[0].ports, sent[1].ports);  // booked, never shared on a node
  EXPECT_TRUE(Report(id, 0, "Running", 2'000));
  EXPECT_TRUE(Report(id, 1, "Running", 2'000));
  EXPECT_TRUE(Report(id, 0, "Succeeded", 5'000));
  EXPECT_EQ(State(id), JobState::kRunning);  // one of two
  EXPECT_TRUE(Report(id, 1, "Succeeded", 6'000));
  EXPECT_EQ(State(id), JobState::kSucceeded);
  EXPECT_EQ(engine_.FindJob(id)->rec.end_ms, 6'000);
  EXPECT_THAT(engine_.JobsOnNode("n1"), IsEmpty());
  ASSERT_EQ(engine_.Prune().size(), 1u);
  EXPECT_EQ(engine_.FindJob(id), nullptr);
}

// ListQueues reads each queue's counts and usage from an index the engine
// keeps as jobs change, not from a walk over every job.
TEST_F(EngineTest, EachQueuesLoadIsKeptAsJobsChange) {
  engine_.queues()["research"].name = "research";
  const int64_t a = Add("queue: research\n", 1), b = Add("", 1), c = Add("queue: research\n", 2);
  EXPECT_EQ(engine_.QueueLoads().at("research").pending, 2);
  EXPECT_EQ(engine_.QueueLoads().at("default").pending, 1);
  EXPECT_EQ(Pass(1'000).binds, 2);  // a and b; c waits for two devices
  const Engine::QueueLoad& research = engine_.QueueLoads().at("research");
  EXPECT_EQ(research.running, 1);
  EXPECT_EQ(research.pending, 1);
  EXPECT_EQ(research.used.at("devices"), 1'000);
  EXPECT_EQ(research.used.at("nvidia/A100"), 1'000);
  EXPECT_EQ(research.used.at("cpu"), 1'000);
  // The node comes back with other devices while a runs: what a gives back
  // when it ends is what it took.
  engine_.nodes()["n1"].node.devices[0].model = "H100";
  engine_.nodes()["n1"].node.devices[1].model = "H100";
  check_queue_loads_ = false;  // a sum over today's devices would say H100 for a's task
  EXPECT_TRUE(Report(a, 0, "Succeeded", 2'000));
  EXPECT_TRUE(Report(b, 0, "Succeeded", 2'000));
  EXPECT_EQ(State(a), JobState::kSucceeded);
  ASSERT_EQ(engine_.Prune().size(), 2u);
  EXPECT_FALSE(engine_.QueueLoads().contains("default"));
  EXPECT_EQ(engine_.QueueLoads().at("research").used.count("nvidia/A100"), 0u);
  EXPECT_EQ(Pass(3'000).binds, 1);
  EXPECT_EQ(engine_.QueueLoads().at("research").used.at("nvidia/H100"), 2'000);
  EXPECT_EQ(engine_.QueueLoads().at("research").pending, 0);
  EXPECT_EQ(State(c), JobState::kRunning);
}

TEST_F(EngineTest, AWaitingJobIsToldWhyAndWhenItsReservationStarts) {
  const int64_t a = Add("runtime_estimate: 1h\n", 2);
  EXPECT_EQ(Pass(1'000).binds, 1);
  EXPECT_TRUE(Report(a, 0, "Running", 1'000));
  EXPECT_TRUE(Report(a, 1, "Running", 1'000));
  const int64_t b = Add("runtime_estimate: 10m\n", 2), c = Add("runtime_estimate: 10m\n", 1);
  Pass(2'000);
  EXPECT_THAT(engine_.FindJob(b)->rec.reason, HasSubstr("Resources: "));
  EXPECT_THAT(engine_.FindJob(b)->rec.reason, HasSubstr("; reserved to start in about 60 min"));
  EXPECT_THAT(engine_.FindJob(c)->rec.reason, Not(HasSubstr("reserved")));
  Pass(30 * 60'000);
  EXPECT_THAT(engine_.FindJob(b)->rec.reason, HasSubstr("; reserved to start in about 31 min"));
}

TEST_F(EngineTest, AnEndedTasksPeakMemoryIsRecorded) {
  const int64_t id = Add("", 1);
  ASSERT_EQ(Pass(1'000).binds, 1);
  ASSERT_TRUE(Report(id, 0, "Running", 2'000));
  Change c(3'000);
  ASSERT_TRUE(engine_.ApplyTaskReports(
      "n1", {{.task_id = wire::TaskId(id, 0, 0, 0), .state = "Succeeded", .end_ms = 3'000, .max_rss_kib = 4'096}}, c));
  ASSERT_EQ(c.batch.tasks.size(), 1u);
  EXPECT_EQ(c.batch.tasks[0].max_rss_kib, 4'096);  // written with the task's end
  engine_.Adopt(std::move(c));
  EXPECT_EQ(engine_.FindJob(id)->tasks[0].rec.max_rss_kib, 4'096);
}

TEST_F(EngineTest, AFailedTaskRestartsTheGangAfterItsBackOff) {
  const int64_t id = Add("restart: {policy: OnFailure, max_retries: 2}\n");
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Report(id, 0, "Failed", 3'000);
  const JobEntry& j = *engine_.FindJob(id);
  EXPECT_EQ(j.rec.state, JobState::kPending);
  EXPECT_EQ(j.rec.attempt, 1);
  EXPECT_THAT(j.rec.reason, HasSubstr("restarting in 10 s (1 of 2 retries used)"));
  EXPECT_EQ(engine_.RetryAtMs(j), 13'000);
  EXPECT_EQ(Pass(12'999).binds, 0);  // its back-off is not over
  EXPECT_EQ(Pass(13'000).binds, 1);
  EXPECT_EQ(State(id), JobState::kRunning);
  EXPECT_EQ(engine_.AssignmentsOf("n1").at(0).attempt, 1);
}

TEST_F(EngineTest, AServicesReplicaRestartsHoweverItEndsAndBacksOffOnlyInACrashLoop) {
  const int64_t id = Add("kind: service\n");
  ASSERT_EQ(Pass(0).binds, 1);
  const wire::Assignment first = engine_.AssignmentsOf("n1").at(0);
  EXPECT_EQ(first.serve_port, first.ports.back());  // what its agent checks, its probe and endpoint name
  EXPECT_EQ(first.env.at("ICOS_PORT"), absl::StrCat(first.serve_port));
  EXPECT_EQ(first.env.count("ICOS_REPLICA"), 1u);  // its index (the store numbers replicas from 0)
  Report(id, 0, "Running", 1'000);
  Report(id, 0, "Succeeded", 3'000);  // a service never ends by itself
  const JobEntry& j = *engine_.FindJob(id);
  EXPECT_EQ(j.rec.state, JobState::kPending);
  EXPECT_EQ(j.rec.attempt, 1);
  EXPECT_THAT(j.rec.reason, HasSubstr("restarting (a service's replica restarts Always; 1 short runs in a row) after "
                                      "task 0/0 Succeeded (exit 0)"));
  EXPECT_EQ(engine_.RetryAtMs(j), 3'000);  // a first short run: at once
  ASSERT_EQ(Pass(3'000).binds, 1);
  Report(id, 0, "Running", 4'000, 1);
  Report(id, 0, "Failed", 5'000, 1);  // a second short run in a row: a back-off
  EXPECT_EQ(j.rec.attempt, 2);
  EXPECT_THAT(j.rec.reason, HasSubstr("restarting in 10 s"));
  EXPECT_EQ(engine_.RetryAtMs(j), 15'000);
  EXPECT_EQ(Pass(14'999).binds, 0);
  ASSERT_EQ(Pass(15'000).binds, 1);
  Report(id, 0, "Running", 16'000, 2);
  const int64_t end = 16'000 + Engine::kStableRunMs;  // a long run resets the back-off
  Report(id, 0, "Failed", end, 2);
  EXPECT_EQ(j.rec.state, JobState::kPending);
  EXPECT_EQ(j.rec.attempt, 3);
  EXPECT_THAT(j.rec.reason, HasSubstr("restarting (a service's replica restarts Always; 0 short runs"));
  EXPECT_EQ(engine_.RetryAtMs(j), end);
  EXPECT_EQ(Pass(end).binds, 1);
  // A batch job that names ICOS_PORT itself is no service: its agent checks
  // no port for it.
  const int64_t batch = Add("env: {ICOS_PORT: \"8080\"}\n");
  ASSERT_EQ(Pass(end + 1).binds, 1);
  for (const wire::Assignment& a : engine_.AssignmentsOf("n1")) {
    if (a.job_id == batch) {
      EXPECT_EQ(a.serve_port, 0);
    }
  }
}

TEST_F(EngineTest, AReplicasCommandProbesGoToItsAgentAndOthersStayWithTheController) {
  const int64_t id =
      Add("kind: service\nservice: {readiness: {command: [test, -f, ready], initial_delay: 2s, period: 3s}, "
          "liveness: {http: /healthz}, startup: {command: [/bin/true], timeout: 2s}}\n");
  ASSERT_EQ(Pass(0).binds, 1);
  const wire::Assignment a = engine_.AssignmentsOf("n1").at(0);
  ASSERT_EQ(a.job_id, id);
  ASSERT_EQ(a.command_probes.size(), 2u);  // the HTTP liveness probe is the controller's
  EXPECT_EQ(a.command_probes[0], (wire::CommandProbe{.kind = "readiness",
                                                     .argv = {"test", "-f", "ready"},
                                                     .initial_delay_ms = 2'000,
                                                     .period_ms = 3'000,
                                                     .timeout_ms = 1'000}));
  EXPECT_EQ(a.command_probes[1].kind, "startup");
  EXPECT_EQ(a.command_probes[1].timeout_ms, 2'000);
}

TEST_F(EngineTest, TheSchedulerIsToldAttainedServiceAndTheCurrentRunsStart) {
  const int64_t id = Add("runtime_estimate: 100s\nrestart: {policy: OnFailure, max_retries: 1}\n");
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Report(id, 0, "Failed", 41'000);  // 40 device-seconds attained
  Pass(60'000);                     // back-off over: second attempt
  Report(id, 0, "Running", 60'000, 1);
  const JobRuns runs = engine_.RunsOf(*engine_.FindJob(id), 70'000);
  EXPECT_TRUE(runs.running);
  EXPECT_DOUBLE_EQ(runs.attained_device_s, 50.0);
  EXPECT_EQ(runs.run_start_ms, 60'000);         // not the first run's start
  EXPECT_EQ(runs.running_estimate_ms, 60'000);  // 100 s less the 40 s done
}

// BeginPass keeps what it derived from each job between passes; the time
// still moves what depends on it (attained service, recent interruptions,
// a run whose tasks have not started), and a change to the job or to the
// ready nodes is never missed.
TEST_F(EngineTest, WhatAPassKeepsOfAJobFollowsTheTimeAndEveryChange) {
  const int64_t id = Add("runtime_estimate: 100s\nrestart: {policy: OnFailure, max_retries: 3}\n", 2);
  Pass(1'000);
  BeginPassChecked(1'500);  // assigned, not started: its run starts "now"
  Report(id, 0, "Running", 2'000);
  BeginPassChecked(3'000);  // one task started, one about to
  Report(id, 1, "Running", 2'500);
  PassInput at = BeginPassChecked(12'000);
  ASSERT_EQ(at.snap.running.size(), 1u);
  const double attained = at.snap.running[0].job.attained_device_s;
  at = BeginPassChecked(22'000);                                                // kept, yet ten seconds later
  EXPECT_DOUBLE_EQ(at.snap.running[0].job.attained_device_s, attained + 20.0);  // two devices
  // A failure: the job restarts after its back-off, its first run now an
  // interruption of the last hour until the hour is over.
  Report(id, 0, "Failed", 30'000);
  BeginPassChecked(30'500);  // its other task still stopping
  Report(id, 1, "Killed", 31'000);
  EXPECT_EQ(Pass(45'000).binds, 1);
  Report(id, 0, "Running", 46'000, 1);
  at = BeginPassChecked(50'000);
  EXPECT_EQ(at.snap.running.at(0).job.recent_interruptions, 1);
  at = BeginPassChecked(31'000 + 3'600'000);  // its last task ended at 31 s
  EXPECT_EQ(at.snap.running.at(0).job.recent_interruptions, 0);
  // The ready nodes change: the tasks are indexed afresh.
  engine_.nodes()["n0"] = Node("n0", 1);
  at = BeginPassChecked(3'700'000);
  EXPECT_EQ(at.node_names.front(), "n0");
}

TEST_F(EngineTest, ADecisionOnAJobThatChangedSinceTheSnapshotIsDropped) {
  const int64_t id = Add();
  PassInput in = engine_.BeginPass(0);
  auto decisions = scheduler_.Schedule(in.snap);
  ASSERT_TRUE(decisions.ok());
  ASSERT_EQ(decisions->binds.size(), 1u);
  // Held while the core thought: the hold moves its revision.
  Change hold(1);
  JobEntry& j = engine_.Stage(hold, id);
  j.rec.hold = "user";
  ++j.revision;
  engine_.Adopt(std::move(hold));
  BindWork work = engine_.PrepareBinds(in, *decisions);
  engine_.MakeTasks(in, work);
  PassOutcome out = engine_.ApplyPass(in, *decisions, std::move(work), 2);
  EXPECT_TRUE(out.stale);
  EXPECT_EQ(out.binds, 0);
  EXPECT_TRUE(out.change.batch.jobs.empty());
  EXPECT_EQ(Pass(3).binds, 0);
  EXPECT_THAT(engine_.FindJob(id)->rec.reason, HasSubstr("Held: by its owner"));
}

TEST_F(EngineTest, AChangeNeverAdoptedLeavesTheEngineAsItWas) {
  const int64_t id = Add();
  Pass(0);
  Change lost(10);  // a commit that failed: never adopted
  EXPECT_TRUE(engine_.ApplyTaskReports("n1", {{.task_id = wire::TaskId(id, 0, 0, 0), .state = "Failed"}}, lost));
  EXPECT_EQ(lost.jobs.at(id).rec.state, JobState::kFailed);
  EXPECT_EQ(State(id), JobState::kRunning);
  EXPECT_EQ(engine_.FindJob(id)->tasks.at(0).rec.state, TaskState::kAssigned);
}

TEST_F(EngineTest, ASilentNodeIsLostAndItsTasksFailOnlyAfterTheirMaxDisconnect) {
  const int64_t id = Add("max_disconnect: 300s\n");
  engine_.nodes()["n1"].rec.heartbeat_ms = 0;
  Pass(0);
  Report(id, 0, "Running", 0);
  Change at_lease(61'000);
  engine_.CheckNodes(at_lease);
  EXPECT_EQ(engine_.nodes().at("n1").rec.state, "NotReady");
  EXPECT_TRUE(at_lease.jobs.empty() || at_lease.jobs.at(id).rec.state == JobState::kRunning);
  engine_.Adopt(std::move(at_lease));
  EXPECT_EQ(State(id), JobState::kRunning);
  Change later(301'000);
  engine_.CheckNodes(later);
  engine_.Adopt(std::move(later));
  EXPECT_EQ(State(id), JobState::kFailed);
  EXPECT_THAT(engine_.FindJob(id)->rec.reason, HasSubstr("node 'n1' lost"));
}

TEST_F(EngineTest, APreemptorsTasksWaitUnsentUntilItsVictimStops) {
  const int64_t low = Add("priority: 0\npreemptible: true\n", 2);
  Pass(0);
  Report(low, 0, "Running", 0);
  Report(low, 1, "Running", 0);
  const int64_t high = Add("priority: 100\n", 2);
  const PassOutcome out = Pass(1'000);
  EXPECT_EQ(out.preemptions, 1);
  EXPECT_EQ(State(low), JobState::kPending);
  EXPECT_EQ(State(high), JobState::kRunning);
  // The victim's tasks are told to stop; the preemptor's are not sent yet.
  std::vector<wire::Assignment> sent = engine_.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 2u);
  for (const auto& a : sent) {
    EXPECT_EQ(a.job_id, low);
    EXPECT_FALSE(a.run);
  }
  Report(low, 0, "Killed", 2'000);
  Report(low, 1, "Killed", 2'000);
  // The victim holds no active task now: n1's watchers wake for the preemptor.
  EXPECT_THAT(last_touched_, ElementsAre("n1"));
  sent = engine_.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_EQ(sent[0].job_id, high);
  EXPECT_TRUE(sent[0].run);
}

// The checkpoint contract: a reported checkpoint moves the job's
// checkpoint time (never past now); a preempted victim that checkpoints is
// told to checkpoint first; what its tasks ran since the checkpoint is lost.
TEST_F(EngineTest, APreemptedJobIsToldToCheckpointAndLosesOnlyTheWorkSinceItsLast) {
  const int64_t low = Add("checkpoint: {signal: SIGUSR2, grace: 30s}\n", 2);
  Pass(0);
  Report(low, 0, "Running", 1'000);
  Report(low, 1, "Running", 1'000);
  auto checkpoint = [&](int64_t at, int64_t now) {
    std::vector<wire::TaskStatus> all;
    for (int32_t r : {0, 1}) all.push_back({.task_id = wire::TaskId(low, 0, r, 0), .state = "Running"});
    all[0].checkpoint_ms = at;
    Change c(now);
    engine_.ApplyTaskReports("n1", all, c);
    engine_.Adopt(std::move(c));
  };
  checkpoint(50'000, 51'000);
  EXPECT_EQ(engine_.FindJob(low)->rec.checkpoint_ms, 50'000);
  checkpoint(40'000, 52'000);  // an older one changes nothing
  EXPECT_EQ(engine_.FindJob(low)->rec.checkpoint_ms, 50'000);
  checkpoint(99'000, 55'000);  // the agent's clock ahead of ours: now
  EXPECT_EQ(engine_.FindJob(low)->rec.checkpoint_ms, 55'000);
  EXPECT_EQ(engine_.BeginPass(56'000).snap.running.at(0).job.checkpoint_ms, 55'000);

  const int64_t high = Add("priority: 100\n", 2);
  ASSERT_EQ(Pass(60'000).preemptions, 1);
  std::vector<wire::Assignment> sent = engine_.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 2u);
  for (const auto& a : sent) {
    EXPECT_EQ(a.job_id, low);
    EXPECT_FALSE(a.run);
    EXPECT_TRUE(a.checkpoint_first);
    EXPECT_EQ(a.checkpoint_signal, SIGUSR2);
    EXPECT_EQ(a.checkpoint_grace_ms, 30'000);
  }
  Report(low, 0, "Killed", 62'000);
  Report(low, 1, "Killed", 65'000);
  // Two devices: 7 s and 10 s since the checkpoint at 55 s.
  EXPECT_EQ(engine_.FindJob(low)->rec.lost_device_ms, 17'000);
  // The agent reports an end again until it is acknowledged (say the
  // controller was killed before answering): it is counted once.
  Report(low, 1, "Killed", 65'000);
  EXPECT_EQ(engine_.FindJob(low)->rec.lost_device_ms, 17'000);
  EXPECT_EQ(State(high), JobState::kRunning);
  // Its next run is an interruption in the last hour, for the scheduler's cap.
  EXPECT_EQ(engine_.RunsOf(*engine_.FindJob(low), 70'000).interruptions_last_hour, 1);
  EXPECT_EQ(engine_.RunsOf(*engine_.FindJob(low), 70'000 + 3'600'000).interruptions_last_hour, 0);
}

// The window of a planned stop is sized from the job's history: a save
// that took longer than the spec's grace (or ran out of its window, for a
// job known to checkpoint) makes the next stop wait longer, up to the cap.
TEST_F(EngineTest, APlannedStopWaitsAsLongAsTheJobsCheckpointsTook) {
  Engine engine(EngineOptions{.max_checkpoint_window_ms = 120'000});
  engine.nodes()["n1"] = Node("n1", 2);
  auto spec = api::ParseJobSpec(
      "name: ckpt\ncheckpoint: {grace: 30s}\ntasks: [{command: [\"true\"], resources: {cpu: 1, memory: 1Gi, "
      "devices: 1}}]\n");
  ASSERT_TRUE(spec.ok()) << spec.status();
  JobEntry entry;
  entry.spec = *spec;
  entry.rec.id = 1;
  entry.rec.user = "alice";
  entry.rec.state = JobState::kRunning;
  entry.core = api::ToCoreJob(entry.spec, JobId(1), "alice", 0);
  engine.AddJob(std::move(entry));
  auto report = [&](wire::TaskStatus s, int64_t now) {
    Change c(now);
    JobEntry& j = engine.Stage(c, 1);
    engine.NoteCheckpointSave(j, s, "n1", c);
    const bool wrote = !c.batch.jobs.empty();
    engine.Adopt(std::move(c));
    return wrote;
  };
  const JobEntry& j = *engine.FindJob(1);
  EXPECT_EQ(engine.CheckpointWindowMs(j), 30'000);  // no history: the spec's grace
  // A quick save leaves the spec's grace as it is.
  EXPECT_TRUE(report({.checkpoint_save_ms = 10'000}, 1'000));
  EXPECT_EQ(engine.CheckpointWindowMs(j), 30'000);
  // One that took 40 s: 1.5 x 40 + 5 = 65 s.
  EXPECT_TRUE(report({.checkpoint_save_ms = 40'000}, 2'000));
  EXPECT_EQ(j.rec.checkpoint_save_ms, 40'000);
  EXPECT_EQ(engine.CheckpointWindowMs(j), 65'000);
  // The same report again (unacknowledged) or a shorter save: nothing written.
  EXPECT_FALSE(report({.checkpoint_save_ms = 40'000}, 3'000));
  EXPECT_FALSE(report({.checkpoint_save_ms = 20'000}, 3'000));
  // A window that ran out counts only for a job that ever finished a checkpoint.
  EXPECT_FALSE(report({.checkpoint_save_ms = 65'000, .checkpoint_cut = true}, 4'000));
  EXPECT_EQ(engine.CheckpointWindowMs(j), 65'000);
  Change c(5'000);
  engine.NoteCheckpoint(engine.Stage(c, 1), 4'500, "n1", c);
  engine.Adopt(std::move(c));
  EXPECT_TRUE(report({.checkpoint_save_ms = 65'000, .checkpoint_cut = true}, 6'000));
  // 1.5 x 65 + 5 = 102.5 s; once more and the cap (120 s) holds it.
  EXPECT_EQ(engine.CheckpointWindowMs(j), 102'500);
  EXPECT_TRUE(report({.checkpoint_save_ms = 102'500, .checkpoint_cut = true}, 7'000));
  EXPECT_EQ(engine.CheckpointWindowMs(j), 120'000);
  // The stop the agent is sent carries the window.
  Change run(8'000);
  JobEntry& staged = engine.Stage(run, 1);
  TaskEntry t;
  t.rec.job_id = 1;
  t.rec.node = "n1";
  t.rec.state = TaskState::kRunning;
  t.assignment.task_id = wire::TaskId(1, 0, 0, 0);
  t.assignment.checkpoint_signal = SIGUSR1;
  t.assignment.checkpoint_grace_ms = 30'000;  // as it was bound
  staged.tasks.push_back(t);
  staged.rec.state = JobState::kPending;  // preempted: it will run again
  run.batch.jobs.push_back(staged.rec);
  engine.Adopt(std::move(run));
  std::vector<wire::Assignment> sent = engine.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_TRUE(sent[0].checkpoint_first);
  EXPECT_EQ(sent[0].checkpoint_grace_ms, 120'000);
  // A declared grace above the cap is the job's own: kept.
  Engine generous(EngineOptions{.max_checkpoint_window_ms = 10'000});
  JobEntry big = j;
  big.spec.checkpoint.grace_s = 600;
  EXPECT_EQ(generous.CheckpointWindowMs(big), 600'000);
}

TEST_F(EngineTest, ACancelledJobIsStoppedWithoutACheckpointAndLosesNothing) {
  const int64_t id = Add("checkpoint: {}\n");
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Change c(10'000);
  JobEntry& j = engine_.Stage(c, id);
  j.rec.state = JobState::kCancelled;  // as the controller's cancel does
  c.batch.jobs.push_back(j.rec);
  engine_.Adopt(std::move(c));
  std::vector<wire::Assignment> sent = engine_.AssignmentsOf("n1");
  ASSERT_EQ(sent.size(), 1u);
  EXPECT_FALSE(sent[0].run);
  EXPECT_FALSE(sent[0].checkpoint_first);
  Report(id, 0, "Killed", 12'000);
  EXPECT_EQ(engine_.FindJob(id)->rec.lost_device_ms, 0);
}

// Resume after faults: a job that checkpoints (or restarts on failure) whose
// node is lost or whose device turns sick starts again, from its last
// checkpoint, after the back-off, spending no retry of its own.
TEST_F(EngineTest, AJobThatCheckpointsResumesAfterItsNodeIsLostWithoutSpendingARetry) {
  const int64_t id = Add("checkpoint: {}\n");
  engine_.nodes()["n1"].rec.heartbeat_ms = 0;
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Change c(200'000);
  JobEntry& j = engine_.Stage(c, id);
  j.rec.checkpoint_ms = 150'000;
  c.batch.jobs.push_back(j.rec);
  engine_.Adopt(std::move(c));
  Change lost(301'000);
  engine_.CheckNodes(lost);
  engine_.Adopt(std::move(lost));
  const JobEntry& after = *engine_.FindJob(id);
  EXPECT_EQ(after.rec.state, JobState::kPending);
  EXPECT_EQ(after.rec.attempt, 1);
  EXPECT_THAT(after.rec.reason, HasSubstr("from its last checkpoint (1 infrastructure failures, no retry spent)"));
  EXPECT_EQ(Engine::RetriesUsed(after), 0);
  EXPECT_EQ(engine_.RetryAtMs(after), 301'000 + 10'000);  // the back-off still applies
  // The work since the checkpoint (151 s on one device) is what it lost.
  EXPECT_EQ(after.rec.lost_device_ms, 151'000);
}

TEST_F(EngineTest, AJobThatNeitherCheckpointsNorRestartsFailsWhenItsDeviceTurnsSick) {
  const int64_t id = Add("");
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Change c(5'000);
  engine_.FailTasksOnDevices("n1", {{0, "XID 79"}, {1, "XID 79"}}, c);
  engine_.Adopt(std::move(c));
  EXPECT_EQ(State(id), JobState::kFailed);
}

TEST_F(EngineTest, ARetryIsSpentOnlyByTheJobsOwnFailure) {
  const int64_t id = Add("restart: {policy: OnFailure, max_retries: 1}\n");
  Pass(0);
  Report(id, 0, "Running", 1'000);
  Change sick(5'000);
  engine_.FailTasksOnDevices("n1", {{0, "XID 79"}, {1, "XID 79"}}, sick);
  engine_.Adopt(std::move(sick));
  EXPECT_EQ(State(id), JobState::kPending);
  EXPECT_EQ(Engine::RetriesUsed(*engine_.FindJob(id)), 0);
  engine_.nodes()["n1"].unhealthy_reason.clear();
  Pass(100'000);
  Report(id, 0, "Running", 101'000, 1);
  Report(id, 0, "Failed", 102'000, 1);  // its own: the one retry
  EXPECT_EQ(State(id), JobState::kPending);
  EXPECT_THAT(engine_.FindJob(id)->rec.reason, HasSubstr("1 of 1 retries used"));
  Pass(500'000);
  Report(id, 0, "Running", 501'000, 2);
  Report(id, 0, "Failed", 502'000, 2);
  EXPECT_EQ(State(id), JobState::kFailed);
}

TEST(CheckDependenciesTest, EachRuleAndItsReasons) {
  using store::JobState;
  std::map<int64_t, JobState> states = {
      {1, JobState::kSucceeded}, {2, JobState::kFailed}, {3, JobState::kRunning}, {4, JobState::kCancelled}};
  auto of = [&](int64_t id) -> std::optional<JobState> {
    auto it = states.find(id);
    return it == states.end() ? std::nullopt : std::optional<JobState>(it->second);
  };
  auto check = [&](api::Dependencies d) { return CheckDependencies(d, of); };
  EXPECT_EQ(check({.after_ok = {1}}).kind, DependencyCheck::Kind::kMet);
  EXPECT_EQ(check({.after_any = {1, 2, 4}}).kind, DependencyCheck::Kind::kMet);
  EXPECT_EQ(check({.after_not_ok = {2, 4}}).kind, DependencyCheck::Kind::kMet);
  DependencyCheck never = check({.after_ok = {3, 2}});
  EXPECT_EQ(never.kind, DependencyCheck::Kind::kNeverMet);  // wins over one still waiting
  EXPECT_EQ(never.reason, "job 2 Failed, so after_ok cannot be met");
  EXPECT_EQ(check({.after_not_ok = {1}}).kind, DependencyCheck::Kind::kNeverMet);
  DependencyCheck waiting = check({.after_ok = {3}, .after_any = {9}});
  EXPECT_EQ(waiting.kind, DependencyCheck::Kind::kWaiting);
  EXPECT_EQ(waiting.reason, "job 3 (Running) to succeed, and 1 more");
}

}  // namespace
}  // namespace icos::engine
