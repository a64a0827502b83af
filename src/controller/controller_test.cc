// The controller without HTTP: submit, schedule, agents' view, task reports,
// restarts, auth. A real SQLite store (in memory or a temp file) and a fake clock.
#include "controller/controller.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/controller_test_util.h"
#include "core/policy_presets.h"
#include "store/sqlite_state_store.h"

namespace icos::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kTwoWorkers[] = R"(
name: ddp
framework: pytorch
tasks:
  - name: worker
    replicas: 2
    command: ["python3", "train.py"]
    resources: {cpu: 1, memory: 1Gi}
)";

TEST_F(ControllerTest, SubmittedJobRunsOnRegisteredNodeWithPyTorchEnv) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers, "/home/alice/proj");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Running");
  auto tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_TRUE(tasks[0].run);
  EXPECT_EQ(tasks[0].workdir, "/home/alice/proj");
  EXPECT_EQ(tasks[0].env.at("MASTER_ADDR"), "10.0.0.1");
  EXPECT_EQ(tasks[0].env.at("WORLD_SIZE"), "2");
  EXPECT_EQ(tasks[0].env.at("RANK"), "0");
  EXPECT_EQ(tasks[1].env.at("RANK"), "1");
  EXPECT_EQ(tasks[1].env.at("LOCAL_RANK"), "1");
  Report("n1", tasks[0].task_id, "Succeeded");
  EXPECT_EQ(State(*id), "Running");
  Report("n1", tasks[1].task_id, "Succeeded");
  EXPECT_EQ(State(*id), "Succeeded");
}

// Ports were job id + 29500 with the ranks above it: job N's ranks took job
// N+1's rendezvous port. Now no two active tasks on a node share a port, and
// a restarted controller knows which are held.
TEST_F(ControllerTest, NoTwoTasksOnANodeShareAPort) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1", 8), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto first = controller_->Submit(alice_, kTwoWorkers);
  auto second = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  auto ports_of = [](const std::vector<wire::Assignment>& tasks) {
    std::vector<int32_t> all;
    for (const wire::Assignment& a : tasks) all.insert(all.end(), a.ports.begin(), a.ports.end());
    return all;
  };
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 4u);
  std::vector<int32_t> held = ports_of(tasks);
  EXPECT_EQ(held.size(), 6u);  // a rank port each, and two rendezvous ports
  EXPECT_EQ(std::set<int32_t>(held.begin(), held.end()).size(), held.size()) << absl::StrJoin(held, ",");
  for (const wire::Assignment& a : tasks) {
    if (a.env.at("RANK") == "0") {
      EXPECT_EQ(a.env.at("MASTER_PORT"), absl::StrCat(a.ports[0]));
    }
  }
  // The first job ends: a third job may take its ports, and only those.
  for (const wire::Assignment& a : tasks) {
    if (a.job_id == *first) Report("n1", a.task_id, "Succeeded");
  }
  ASSERT_EQ(State(*first), "Succeeded");
  Open();  // a controller restart: the second job's ports are still held
  auto third = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(third.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  tasks = Watch("n1");
  held = ports_of(tasks);
  EXPECT_EQ(held.size(), 6u);
  EXPECT_EQ(std::set<int32_t>(held.begin(), held.end()).size(), held.size()) << absl::StrJoin(held, ",");
  for (int32_t p : held) EXPECT_TRUE(p >= options_.port_base && p < options_.port_base + options_.port_span) << p;
}

// Ctrl-C on `icos up` stops the node's tasks: the job did nothing wrong, so
// it goes back to pending (no retry spent, restart: Never notwithstanding)
// and runs again when a node is back; its other rank is told to stop.
TEST_F(ControllerTest, AJobWhoseNodeShutDownUnderItIsRequeued) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1", 8), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  wire::TaskStatus running;  // each heartbeat lists every task the node holds
  running.task_id = tasks[1].task_id;
  running.state = "Running";
  wire::TaskStatus stopped;
  stopped.task_id = tasks[0].task_id;
  stopped.state = "Killed";
  stopped.exit_code = 143;
  stopped.reason = "stopped: its node shut down (the node's icos agent stopped)";
  stopped.requeue = true;
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {running, stopped}).ok());
  auto job = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(State(*id), "Pending");
  EXPECT_EQ(job->job.attempt, 1);
  EXPECT_EQ(job->job.reason, "requeued: node 'n1' shut down under it");
  tasks = Watch("n1");
  for (const wire::Assignment& a : tasks) {
    if (a.task_id == wire::TaskId(*id, 0, 1, 0)) {
      EXPECT_FALSE(a.run);  // the other rank stops
    }
  }
  Report("n1", wire::TaskId(*id, 0, 1, 0), "Killed", 143);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Running");  // attempt 1 placed again
  EXPECT_EQ(controller_->GetJob(admin_, *id)->job.attempt, 1);
}

// A node with several vendors numbers devices across them; each vendor's
// runtime numbers its own. The agent says both; they are kept (a restart too)
// and listed, so icos job and the map can show the number the task sees.
TEST_F(ControllerTest, ADevicesRuntimeNumberIsKeptAndListed) {
  core::Node n = Node("mixed", 2);
  n.devices[1].vendor = "ascend";
  n.devices[1].model = "910B";
  n.devices[0].runtime_index = 0;
  n.devices[1].runtime_index = 0;  // the first Ascend device
  ASSERT_TRUE(controller_->RegisterNode(admin_, n, "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  Open();
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ(nodes->size(), 1u);
  ASSERT_EQ((*nodes)[0].node.devices.size(), 2u);
  EXPECT_EQ((*nodes)[0].node.devices[1].runtime_index, 0);
  EXPECT_EQ((*nodes)[0].node.devices[1].vendor, "ascend");
}

TEST_F(ControllerTest, RanksOnTwoNodesMeetAtRankZerosAddressOverTheirOwnInterface) {
  // One GPU per node, one rank per GPU: rank 0 on n1, rank 1 on n2. Both
  // rendezvous at n1's registered address (not its name); each pins NCCL and
  // gloo to its own interface, a placeholder its agent substitutes. A job
  // that names its interface keeps it.
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1", 1), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n2", 1), "10.0.0.2", "http://10.0.0.2:9", "k").ok());
  auto id = controller_->Submit(alice_, R"(
name: ddp
framework: pytorch
env: {GLOO_SOCKET_IFNAME: ib0}
tasks:
  - replicas: 2
    command: ["python3", "train.py"]
    resources: {cpu: 1, memory: 1Gi, devices: 1}
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  for (const char* node : {"n1", "n2"}) {
    auto tasks = Watch(node);
    ASSERT_EQ(tasks.size(), 1u) << node;
    EXPECT_EQ(tasks[0].env.at("MASTER_ADDR"), "10.0.0.1") << node;
    EXPECT_EQ(tasks[0].env.at("NCCL_SOCKET_IFNAME"), "=${ICOS_NODE_INTERFACE}") << node;
    EXPECT_EQ(tasks[0].env.at("TP_SOCKET_IFNAME"), "${ICOS_NODE_INTERFACE}") << node;
    EXPECT_EQ(tasks[0].env.at("GLOO_SOCKET_IFNAME"), "ib0") << node;
  }
}

TEST_F(ControllerTest, JobIsDurableBeforeSubmitReturns) {
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(id.ok());
  Open();  // "kill" the controller right after the submit returned
  EXPECT_EQ(State(*id), "Pending");
}

TEST_F(ControllerTest, RestartKeepsRunningTasksAndDoesNotRunThemTwice) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto before = Watch("n1");
  ASSERT_EQ(before.size(), 2u);
  Report("n1", before[0].task_id, "Running");
  Open();
  // The agent re-registers and reports; the same two tasks, no new ones.
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  auto after = Watch("n1");
  ASSERT_EQ(after.size(), 2u);
  EXPECT_EQ(after[0].task_id, before[0].task_id);
  EXPECT_EQ(after[1].task_id, before[1].task_id);
  auto view = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(view.ok());
  EXPECT_EQ(view->tasks.size(), 2u);
  EXPECT_EQ(State(*id), "Running");
}

TEST_F(ControllerTest, FailedRankRestartsTheWholeGangOnce) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  std::string spec = std::string(kTwoWorkers) + "restart: {policy: OnFailure, max_retries: 1}\n";
  auto id = controller_->Submit(alice_, spec);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto first = Watch("n1");
  ASSERT_EQ(first.size(), 2u);
  Report("n1", first[1].task_id, "Failed", 3);
  // Rank 1 failed: rank 0 of that attempt must stop, nothing new runs yet.
  EXPECT_EQ(State(*id), "Pending");
  auto stopping = Watch("n1");
  ASSERT_EQ(stopping.size(), 1u);
  EXPECT_FALSE(stopping[0].run);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Pending");  // the old attempt still holds its task
  Report("n1", first[0].task_id, "Killed");
  // The restart waits for its back-off (10 s after the failure), then runs.
  EXPECT_THAT(controller_->GetJob(admin_, *id)->job.reason, HasSubstr("restarting in 10 s (1 of 1 retries used)"));
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Pending");
  clock_.Advance(10'000);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto second = Watch("n1");
  ASSERT_EQ(second.size(), 2u);
  EXPECT_THAT(second[0].task_id, HasSubstr("-a1"));
  Report("n1", second[0].task_id, "Failed", 1);
  EXPECT_EQ(State(*id), "Failed");  // retries used up
}

// Each failure doubles the wait before the next try, up to the cap.
TEST_F(ControllerTest, RestartBackOffDoublesUpToItsCap) {
  EXPECT_EQ(controller_->RestartBackoffMs(0), 0);
  EXPECT_EQ(controller_->RestartBackoffMs(1), 10'000);
  EXPECT_EQ(controller_->RestartBackoffMs(2), 20'000);
  EXPECT_EQ(controller_->RestartBackoffMs(5), 160'000);
  EXPECT_EQ(controller_->RestartBackoffMs(6), 300'000);
  EXPECT_EQ(controller_->RestartBackoffMs(100), 300'000);
}

TEST_F(ControllerTest, CancelStopsTasksAndEndsTheJob) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("n1");
  ASSERT_TRUE(controller_->Cancel(alice_, *id).ok());
  auto stop = Watch("n1");
  ASSERT_EQ(stop.size(), 2u);
  EXPECT_FALSE(stop[0].run);
  EXPECT_FALSE(stop[1].run);
  Report("n1", tasks[0].task_id, "Killed");
  Report("n1", tasks[1].task_id, "Killed");
  EXPECT_EQ(State(*id), "Cancelled");
  EXPECT_TRUE(Watch("n1").empty());
  EXPECT_EQ(controller_->Cancel(alice_, *id).code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ControllerTest, UsersSeeAndCancelOnlyTheirOwnJobs) {
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(controller_->GetJob(bob_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->Cancel(bob_, *id).code(), absl::StatusCode::kNotFound);
  auto bobs = controller_->ListJobs(bob_, {});
  ASSERT_TRUE(bobs.ok());
  EXPECT_TRUE(bobs->empty());
  EXPECT_TRUE(controller_->GetJob(admin_, *id).ok());
}

TEST_F(ControllerTest, TokensAuthenticateByRole) {
  auto admin = controller_->BootstrapAdminToken();
  ASSERT_TRUE(admin.ok());
  ASSERT_FALSE(admin->empty());
  EXPECT_EQ(controller_->BootstrapAdminToken().value(), "");  // only once
  auto who = controller_->Authenticate(*admin);
  ASSERT_TRUE(who.ok());
  EXPECT_EQ(who->role, Role::kAdmin);
  auto user = controller_->CreateToken(*who, Role::kUser, "carol", "");
  ASSERT_TRUE(user.ok());
  auto carol = controller_->Authenticate(*user);
  ASSERT_TRUE(carol.ok());
  EXPECT_EQ(carol->user, "carol");
  EXPECT_EQ(controller_->CreateToken(*carol, Role::kAdmin, "", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->Authenticate("icos_nope").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(controller_->Authenticate("").status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(controller_->RegisterNode(*carol, Node("x"), "", "", "").status().code(),
            absl::StatusCode::kPermissionDenied);
  Open();  // tokens survive a restart
  EXPECT_TRUE(controller_->Authenticate(*user).ok());
}

TEST_F(ControllerTest, BadSpecsAreRejectedWithTheReason) {
  auto r = controller_->Submit(alice_, "tasks: []\n");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = controller_->Submit(alice_, std::string(kTwoWorkers) + "queue: nope\n");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("queue 'nope' does not exist"));
}

TEST_F(ControllerTest, JobThatCanNeverFitSaysSo) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1", 2), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, R"(
tasks:
  - command: ["true"]
    resources: {devices: 4}
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto j = controller_->GetJob(alice_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(store::JobStateName(j->job.state), std::string("Pending"));
  EXPECT_THAT(j->job.reason, HasSubstr("NeverFits"));
  EXPECT_THAT(j->job.reason, HasSubstr("the largest node has 2"));
}

TEST_F(ControllerTest, SilentNodeIsLostAndItsTasksFail) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  clock_.Advance(60'001);  // past the default max_disconnect (the 60 s lease)
  ASSERT_TRUE(controller_->CheckNodes().ok());
  auto j = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(store::JobStateName(j->job.state), std::string("Failed"));
  EXPECT_THAT(j->job.reason, HasSubstr("node 'n1' lost"));
}

// Past half of max_agent_polls_per_s nodes, agents are asked to call less
// often, but always several times per node lease.
TEST_F(ControllerTest, LargeClustersSlowTheAgentPaceToAQuarterOfTheLeaseAtMost) {
  options_.max_agent_polls_per_s = 4;  // two heartbeats a second for the whole cluster
  options_.node_lease_ms = 10'000;
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  EXPECT_EQ(controller_->AgentPaceMs(), 1'000);  // never faster than a second
  for (int i = 2; i <= 4; ++i) {
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node(absl::StrCat("n", i)), "127.0.0.1", "u", "k").ok());
  }
  EXPECT_EQ(controller_->AgentPaceMs(), 2'000);  // 4 nodes at 2 beats/s
  for (int i = 5; i <= 12; ++i) {
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node(absl::StrCat("n", i)), "127.0.0.1", "u", "k").ok());
  }
  EXPECT_EQ(controller_->AgentPaceMs(), 2'500);  // 6 s for 12 nodes, but a quarter of the lease at most
}

// A silent node's tasks are failed (and may run elsewhere) only once their
// max_disconnect has passed: by then the node's agent has stopped them.
TEST_F(ControllerTest, TasksOfASilentNodeFailOnlyAfterTheirMaxDisconnect) {
  options_.node_lease_ms = 20'000;
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  auto patient = controller_->Submit(alice_, "max_disconnect: 1m\ntasks: [{command: [sleep, '1000']}]\n");
  ASSERT_TRUE(patient.ok()) << patient.status();
  auto quick = controller_->Submit(alice_, "tasks: [{command: [sleep, '1000']}]\n");
  ASSERT_TRUE(quick.ok()) << quick.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  std::vector<wire::TaskStatus> running;
  for (const auto& t : tasks) {
    EXPECT_EQ(t.max_disconnect_ms, t.job_id == *patient ? 60'000 : 20'000);
    running.push_back({.task_id = t.task_id, .state = "Running"});
  }
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", running).ok());
  clock_.Advance(20'000);  // exactly the lease: not yet past it
  ASSERT_TRUE(controller_->CheckNodes().ok());
  EXPECT_EQ(State(*quick), "Running");
  clock_.Advance(1);
  ASSERT_TRUE(controller_->CheckNodes().ok());
  EXPECT_EQ(State(*quick), "Failed");
  EXPECT_EQ(State(*patient), "Running")
      << controller_->GetJob(admin_, *patient)->job.reason;  // still within its own minute
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  EXPECT_FALSE((*nodes)[0].ready);  // no new work meanwhile
  clock_.Advance(40'000);
  ASSERT_TRUE(controller_->CheckNodes().ok());
  EXPECT_EQ(State(*patient), "Failed");
}

// The agent keeps reporting an ended task until its end is acknowledged;
// the acknowledgement comes only once the end is in the store.
TEST_F(ControllerTest, HeartbeatAcknowledgesEndsOnceTheyAreDurable) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_FALSE(tasks[0].started);
  wire::TaskStatus running{.task_id = tasks[0].task_id, .state = "Running"};
  auto reply = controller_->Heartbeat(admin_, "n1", {running});
  ASSERT_TRUE(reply.ok());
  EXPECT_THAT(reply->acked, IsEmpty());
  EXPECT_TRUE(Watch("n1")[0].started);  // an agent without its journal must not start it again
  wire::TaskStatus done{.task_id = tasks[0].task_id, .state = "Succeeded"};
  const uint64_t before = controller_->WatchAssignments(admin_, "n1", 0, 0)->version;
  reply = controller_->Heartbeat(admin_, "n1", {done});
  ASSERT_TRUE(reply.ok());
  EXPECT_THAT(reply->acked, ElementsAre(tasks[0].task_id));
  EXPECT_GT(reply->version, before);  // older watch answers may still list it
  // Reported again (the reply was lost): acknowledged again, changes nothing.
  reply = controller_->Heartbeat(admin_, "n1", {done});
  ASSERT_TRUE(reply.ok());
  EXPECT_THAT(reply->acked, ElementsAre(tasks[0].task_id));
  // An end of a task the controller does not know (an old job) is acknowledged too.
  wire::TaskStatus stranger{.task_id = "j999-g0-r0-a0", .state = "Failed"};
  reply = controller_->Heartbeat(admin_, "n1", {stranger});
  ASSERT_TRUE(reply.ok());
  EXPECT_THAT(reply->acked, ElementsAre("j999-g0-r0-a0"));
  EXPECT_EQ(State(*id), "Running");
}

// A client that lost the answer to its submission retries it with the same
// Idempotency-Key and gets the job it made, not a second one.
TEST_F(ControllerTest, RetriedSubmissionWithItsKeyReturnsTheSameJob) {
  bool replayed = true;
  auto first = controller_->Submit(alice_, kTwoWorkers, "/home/alice", "key-1", &replayed);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(replayed);
  auto retry = controller_->Submit(alice_, kTwoWorkers, "/home/alice", "key-1", &replayed);
  ASSERT_TRUE(retry.ok()) << retry.status();
  EXPECT_TRUE(replayed);
  EXPECT_EQ(*retry, *first);
  auto jobs = controller_->ListJobs(alice_, {});
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 1u);
  // The same key for another spec is refused, naming the key.
  auto other = controller_->Submit(alice_, "tasks: [{command: [true]}]\n", "/home/alice", "key-1", &replayed);
  EXPECT_TRUE(absl::IsAlreadyExists(other.status())) << other.status();
  // A key with a space or control character is refused.
  EXPECT_TRUE(absl::IsInvalidArgument(controller_->Submit(alice_, kTwoWorkers, "", "a b").status()));
}

TEST_F(ControllerTest, RunningTaskTheAgentNoLongerReportsIsLost) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  Report("n1", tasks[0].task_id, "Running");
  // An assigned task the agent has not picked up yet is not lost...
  auto j = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(store::TaskStateName(j->tasks[1].state), std::string("Assigned"));
  // ...but a running one missing from a heartbeat is.
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}).ok());
  j = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(store::TaskStateName(j->tasks[0].state), std::string("Failed"));
  EXPECT_THAT(j->tasks[0].reason, HasSubstr("lost"));
  EXPECT_EQ(State(*id), "Failed");
}

TEST_F(ControllerTest, DrainedNodeGetsNoNewJobsUntilResumed) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  EXPECT_EQ(controller_->DrainNode(alice_, "n1", true).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->DrainNode(admin_, "nope", true).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(controller_->DrainNode(admin_, "n1", true).ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Pending");
  Open();  // the drain survives a restart, and the agent re-registering
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Pending");
  ASSERT_TRUE(controller_->DrainNode(admin_, "n1", false).ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Running");
}

TEST_F(ControllerTest, TaskOnADeviceThatTurnsUnhealthyFailsAndRestartsElsewhere) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, R"(
restart: {policy: OnFailure, max_retries: 1}
tasks:
  - command: ["train"]
    resources: {devices: 1}
    devices: [{vendor: nvidia}]
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto first = Watch("gpu");
  ASSERT_EQ(first.size(), 1u);
  ASSERT_EQ(first[0].devices, std::vector<int32_t>{0});
  Report("gpu", first[0].task_id, "Running");
  core::Node sick = Node("gpu", 2);
  sick.devices[0].healthy = false;
  ASSERT_TRUE(controller_->RegisterNode(admin_, sick, "127.0.0.1", "u", "k").ok());
  auto j = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_THAT(j->tasks[0].reason, HasSubstr("device 0 (nvidia/A100) became unhealthy"));
  EXPECT_EQ(State(*id), "Pending");  // restarting
  Report("gpu", first[0].task_id, "Killed");
  clock_.Advance(options_.restart_backoff_ms);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto second = Watch("gpu");
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].devices, std::vector<int32_t>{1});  // the healthy one
  EXPECT_EQ(second[0].env.at("CUDA_VISIBLE_DEVICES"), "1");
}

TEST_F(ControllerTest, DevicesGetTheVendorsVisibleDevicesVariable) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 4), "127.0.0.1", "u", "k").ok());
  auto id = controller_->Submit(alice_, R"(
tasks:
  - command: ["nvidia-smi"]
    resources: {devices: 2}
    devices: [{vendor: nvidia}]
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].env.at("CUDA_VISIBLE_DEVICES"), "0,1");
  EXPECT_EQ(tasks[0].devices.size(), 2u);
}

TEST_F(ControllerTest, DrainedDeviceGetsNoNewWorkUntilResumed) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  EXPECT_EQ(controller_->DrainDevice(alice_, "gpu", 0, true).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->DrainDevice(admin_, "nope", 0, true).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->DrainDevice(admin_, "gpu", 2, true).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(controller_->DrainDevice(admin_, "gpu", 0, true).ok());
  // Two devices wanted, one drained: the job waits.
  auto both = controller_->Submit(alice_, R"(
tasks:
  - command: ["train"]
    resources: {devices: 2}
    devices: [{vendor: nvidia}]
)");
  ASSERT_TRUE(both.ok()) << both.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*both), "Pending");
  // The drain is shown, and survives a controller restart and the agent re-registering.
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ((*nodes)[0].node.devices.size(), 2u);
  EXPECT_TRUE((*nodes)[0].node.devices[0].drained);
  EXPECT_FALSE((*nodes)[0].node.devices[1].drained);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*both), "Pending");
  ASSERT_TRUE(controller_->DrainDevice(admin_, "gpu", 0, false).ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*both), "Running");
}

TEST_F(ControllerTest, OneDeviceJobAvoidsTheDrainedDevice) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  ASSERT_TRUE(controller_->DrainDevice(admin_, "gpu", 0, true).ok());
  auto id = controller_->Submit(alice_, R"(
tasks:
  - command: ["train"]
    resources: {devices: 1}
    devices: [{vendor: nvidia}]
)");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].devices, std::vector<int32_t>{1});
}

TEST_F(ControllerTest, NodeFailingItsHealthCheckGetsNoNewWorkUntilItPasses) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k", "disk /scratch is full").ok());
  auto id = controller_->Submit(alice_, kTwoWorkers);
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Pending");
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ((*nodes)[0].unhealthy_reason, "disk /scratch is full");
  Open();  // the reason is kept until the agent says otherwise
  nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  EXPECT_EQ((*nodes)[0].unhealthy_reason, "disk /scratch is full");
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "u", "k", "").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*id), "Running");
}

// Under SRTF on one GPU: a 10-hour job runs, then a 10-minute one arrives
// and a pass preempts the long one for it.
class SrtfPreemptionTest : public ControllerTest {
 protected:
  void SetUp() override {
    options_.scheduler.order = "srtf";
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 1), "127.0.0.1", "u", "k").ok());
  }
  absl::StatusOr<int64_t> SubmitOneGpuJob(const std::string& estimate) {
    return controller_->Submit(alice_, absl::StrCat("runtime_estimate: ", estimate, R"(
tasks:
  - command: ["train"]
    resources: {devices: 1}
)"));
  }
  // Runs the long job, submits the short one and runs the pass that preempts.
  void LongJobPreemptedForAShortOne() {
    auto long_job = SubmitOneGpuJob("10h");
    ASSERT_TRUE(long_job.ok()) << long_job.status();
    long_job_ = *long_job;
    ASSERT_TRUE(controller_->RunPass().ok());
    auto first = Watch("gpu");
    ASSERT_EQ(first.size(), 1u);
    long_task_ = first[0].task_id;
    Report("gpu", long_task_, "Running");
    auto short_job = SubmitOneGpuJob("10m");
    ASSERT_TRUE(short_job.ok()) << short_job.status();
    short_job_ = *short_job;
    ASSERT_TRUE(controller_->RunPass().ok());
  }
  int64_t long_job_ = 0, short_job_ = 0;
  std::string long_task_;  // its task of the attempt that was preempted
};

// Preemption end to end in the controller, under SRTF: a 10-minute job
// preempts a 10-hour one on the only GPU. The long job's task is told to stop
// and the job goes back to Pending with the reason; the short job's task is
// not sent until the long task has ended; afterwards the long job waits for
// the GPU again.
TEST_F(SrtfPreemptionTest, PreemptsALongJobForAShortOneAndStartsItAfterTheVictimStops) {
  ASSERT_NO_FATAL_FAILURE(LongJobPreemptedForAShortOne());
  EXPECT_EQ(State(long_job_), "Pending");
  auto preempted = controller_->GetJob(admin_, long_job_);
  ASSERT_TRUE(preempted.ok());
  EXPECT_THAT(preempted->job.reason, HasSubstr("is expected to end sooner (10 min against about 600 min left)"));
  EXPECT_EQ(State(short_job_), "Running");
  // The victim is told to stop; the short job's task is not sent until it has.
  auto stopping = Watch("gpu");
  ASSERT_EQ(stopping.size(), 1u);
  EXPECT_EQ(stopping[0].task_id, long_task_);
  EXPECT_FALSE(stopping[0].run);
  Report("gpu", long_task_, "Killed");
  auto after = Watch("gpu");
  ASSERT_EQ(after.size(), 1u);
  EXPECT_NE(after[0].task_id, long_task_);
  EXPECT_TRUE(after[0].run);  // the short job starts now
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(long_job_), "Pending");  // the GPU is busy until the short job ends
}

// Found by the parity check (src/parity): once a preemptor's task has
// started, the victim's later life must not stop it. Here the victim, its
// old task stopped, is placed again on a second node; the preemptor's task
// was told to stop then (its job failed, "Killed"), because "waits for the
// victim" looked at the victim's new tasks too.
TEST_F(SrtfPreemptionTest, APreemptorKeepsRunningWhenItsVictimIsPlacedAgain) {
  ASSERT_NO_FATAL_FAILURE(LongJobPreemptedForAShortOne());
  ASSERT_EQ(State(long_job_), "Pending");
  Report("gpu", long_task_, "Killed");
  auto started = Watch("gpu");
  ASSERT_EQ(started.size(), 1u);
  ASSERT_TRUE(started[0].run);
  Report("gpu", started[0].task_id, "Running");
  // A second GPU node joins; the victim is placed there and starts.
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu2", 1), "127.0.0.2", "u", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(long_job_), "Running");
  // Before the victim's new task has even started, and after.
  for (const char* victim_state : {"", "Running"}) {
    if (*victim_state) {
      auto elsewhere = Watch("gpu2");
      ASSERT_EQ(elsewhere.size(), 1u);
      Report("gpu2", elsewhere[0].task_id, victim_state);
    }
    auto still = Watch("gpu");
    ASSERT_EQ(still.size(), 1u) << victim_state;
    EXPECT_EQ(still[0].task_id, started[0].task_id);
    EXPECT_TRUE(still[0].run) << "the preemptor's running task was told to stop (victim " << victim_state << ")";
    EXPECT_EQ(State(short_job_), "Running");
  }
}

// LAS (Tiresias) runs live: the controller gives the core each job's
// attained device-seconds, so a job that has had its GPU for two hours (past
// the first level, 1 h) yields to a newcomer of the same queue and priority.
TEST_F(ControllerTest, LasPreemptsAJobThatHasHadMoreServiceAndCountsItAcrossAttempts) {
  options_.scheduler.order = "las";
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 1), "127.0.0.1", "u", "k").ok());
  const std::string spec = "tasks:\n  - command: [\"train\"]\n    resources: {devices: 1}\n";
  auto veteran = controller_->Submit(alice_, spec);
  ASSERT_TRUE(veteran.ok()) << veteran.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto first = Watch("gpu");
  ASSERT_EQ(first.size(), 1u);
  Report("gpu", first[0].task_id, "Running");
  clock_.Advance(30 * 60'000);  // half an hour: still level 0, like a newcomer
  auto young = controller_->Submit(bob_, spec);
  ASSERT_TRUE(young.ok()) << young.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*veteran), "Running");
  EXPECT_EQ(State(*young), "Pending");
  clock_.Advance(90 * 60'000);  // two hours in all: level 1
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*veteran), "Pending");
  auto preempted = controller_->GetJob(admin_, *veteran);
  ASSERT_TRUE(preempted.ok());
  EXPECT_THAT(preempted->job.reason, HasSubstr("has attained less service (LAS level 0 < 1)"));
  EXPECT_EQ(State(*young), "Running");
  Report("gpu", first[0].task_id, "Killed");
  auto after = Watch("gpu");
  ASSERT_EQ(after.size(), 1u);
  Report("gpu", after[0].task_id, "Running");
  // The veteran's two hours are remembered (also across a restart): while the
  // newcomer is below an hour, the veteran does not take the GPU back.
  Open();
  clock_.Advance(50 * 60'000);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*young), "Running");
  EXPECT_EQ(State(*veteran), "Pending");
}

// The gavel policy's move to a faster type runs live as stop-then-restart: a
// job on a T4, 4x faster on the H100 that frees, is stopped and placed on
// the H100 once its T4 task has stopped.
TEST_F(ControllerTest, GavelMovesARunningJobToAFasterTypeOnceItsTasksStop) {
  auto preset = core::PolicyPreset("gavel");
  ASSERT_TRUE(preset.ok());
  options_.scheduler = *preset;
  Open();
  core::Node h100 = Node("h100", 1), t4 = Node("t4", 1);
  h100.devices[0].model = "H100";
  t4.devices[0].model = "T4";
  ASSERT_TRUE(controller_->RegisterNode(admin_, h100, "127.0.0.1", "u", "k").ok());
  ASSERT_TRUE(controller_->RegisterNode(admin_, t4, "127.0.0.2", "u", "k").ok());
  auto holder = controller_->Submit(bob_, R"(
runtime_estimate: 48h
tasks:
  - command: ["train"]
    resources: {devices: 1}
    devices: [{vendor: nvidia, model: H100}]
)");
  ASSERT_TRUE(holder.ok()) << holder.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto on_h100 = Watch("h100");
  ASSERT_EQ(on_h100.size(), 1u);
  Report("h100", on_h100[0].task_id, "Running");
  auto mover = controller_->Submit(alice_, R"(
runtime_estimate: 10h
tasks:
  - command: ["train"]
    resources: {devices: 1}
    devices: [{vendor: nvidia, model: T4, throughput: 1}, {vendor: nvidia, model: H100, throughput: 4}]
)");
  ASSERT_TRUE(mover.ok()) << mover.status();
  clock_.Advance(1'000);
  ASSERT_TRUE(controller_->RunPass().ok());
  auto on_t4 = Watch("t4");
  ASSERT_EQ(on_t4.size(), 1u) << controller_->GetJob(admin_, *mover)->job.reason;
  Report("t4", on_t4[0].task_id, "Running");
  clock_.Advance(60'000);
  Report("h100", on_h100[0].task_id, "Succeeded");  // the H100 frees, long before its estimate
  ASSERT_TRUE(controller_->RunPass().ok());
  // The move is decided and placed in one pass (as the simulator does it):
  // the job keeps running, its next attempt bound to the H100, waiting for
  // its T4 task to stop.
  auto moving = controller_->GetJob(admin_, *mover);
  ASSERT_TRUE(moving.ok());
  EXPECT_EQ(store::JobStateName(moving->job.state), std::string("Running"));
  EXPECT_THAT(moving->job.reason, HasSubstr("moving from nvidia/T4 to nvidia/H100"));
  auto stopping = Watch("t4");
  ASSERT_EQ(stopping.size(), 1u);
  EXPECT_FALSE(stopping[0].run);
  EXPECT_TRUE(Watch("h100").empty());  // not before the T4 task stopped
  // Another job cannot take the H100 meanwhile.
  auto latecomer = controller_->Submit(bob_, R"(
tasks:
  - command: ["train"]
    resources: {devices: 1}
    devices: [{vendor: nvidia, model: H100}]
)");
  ASSERT_TRUE(latecomer.ok()) << latecomer.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*latecomer), "Pending");
  Report("t4", on_t4[0].task_id, "Killed");  // the old attempt's end does not fail the job
  EXPECT_EQ(State(*mover), "Running");
  auto moved = Watch("h100");
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_TRUE(moved[0].run);
  EXPECT_NE(moved[0].task_id, on_t4[0].task_id);
}

// --- learned run-time estimates ----------------------------------------------------

class LearnedEstimateTest : public ControllerTest {
 protected:
  void SetUp() override {
    options_.learning.estimator.min_finished_to_estimate = 3;
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  }
  static std::string Spec(const std::string& name, int devices, const std::string& extra = "") {
    return absl::StrCat("name: ", name, "\n", extra, R"(
tasks:
  - command: ["train"]
    resources: {devices: )",
                        devices, "}\n");
  }
  // Submits a one-GPU job and runs it to success in `seconds` on the fake clock.
  void RunToSuccess(const std::string& name, int64_t seconds) {
    auto id = controller_->Submit(alice_, Spec(name, 1));
    ASSERT_TRUE(id.ok()) << id.status();
    ASSERT_TRUE(controller_->RunPass().ok());
    ASSERT_EQ(State(*id), "Running");
    const std::string task = wire::TaskId(*id, 0, 0, 0);
    Report("gpu", task, "Running");
    clock_.Advance(seconds * 1000);
    Report("gpu", task, "Succeeded");
    ASSERT_EQ(State(*id), "Succeeded");
  }
  api::RuntimeEstimate Estimate(int64_t id) {
    auto j = controller_->GetJob(admin_, id);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? j->estimate : api::RuntimeEstimate{};
  }
};

// Three runs of a sweep took 10 minutes each: the next run of it is estimated
// at 10 minutes. A job that gives its own estimate keeps it, and a time limit
// caps a learned estimate (the agent stops the job there).
TEST_F(LearnedEstimateTest, AJobIsEstimatedFromSimilarFinishedJobs) {
  for (int k = 0; k < 3; ++k) RunToSuccess(absl::StrCat("sweep-lr", k), 600);
  auto next = controller_->Submit(alice_, Spec("sweep-lr7", 1));
  auto given = controller_->Submit(alice_, Spec("sweep-lr8", 1, "runtime_estimate: 5m\n"));
  auto limited = controller_->Submit(alice_, Spec("sweep-lr9", 1, "time_limit: 2m\n"));
  ASSERT_TRUE(next.ok() && given.ok() && limited.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  api::RuntimeEstimate e = Estimate(*next);
  EXPECT_EQ(e.source, "learned");
  EXPECT_NEAR(e.seconds, 600, 1);
  e = Estimate(*given);
  EXPECT_EQ(e.source, "user");
  EXPECT_EQ(e.seconds, 300);
  e = Estimate(*limited);
  EXPECT_EQ(e.source, "learned");
  EXPECT_EQ(e.seconds, 120);
  EXPECT_EQ(controller_->counters().estimate_ratio.Count({}), 0u);  // none of them has finished yet
}

// Until `min_finished_to_estimate` jobs have succeeded, a job without an estimate stays
// unknown (or falls back to its time limit); failed and cancelled jobs do not
// count and teach nothing.
TEST_F(LearnedEstimateTest, TooLittleHistoryGivesNoEstimate) {
  RunToSuccess("a-1", 600);
  RunToSuccess("a-2", 600);
  auto failed = controller_->Submit(alice_, Spec("a-3", 1));
  ASSERT_TRUE(failed.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  Report("gpu", wire::TaskId(*failed, 0, 0, 0), "Failed", 1);
  ASSERT_EQ(State(*failed), "Failed");
  auto cancelled = controller_->Submit(alice_, Spec("a-4", 1));
  ASSERT_TRUE(cancelled.ok());
  ASSERT_TRUE(controller_->Cancel(alice_, *cancelled).ok());
  auto open = controller_->Submit(alice_, Spec("a-5", 1));
  auto limited = controller_->Submit(alice_, Spec("a-6", 1, "time_limit: 1h\n"));
  ASSERT_TRUE(open.ok() && limited.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(Estimate(*open).source, "");
  EXPECT_EQ(Estimate(*open).seconds, 0);
  EXPECT_EQ(Estimate(*limited).source, "time_limit");
  EXPECT_EQ(Estimate(*limited).seconds, 3600);
}

// The history survives a controller restart: the estimator is fed the stored
// successes again, with the same run times.
TEST_F(LearnedEstimateTest, HistoryIsReloadedAfterARestart) {
  for (int k = 0; k < 3; ++k) RunToSuccess(absl::StrCat("nightly-", k), 1'800);
  Open();
  auto next = controller_->Submit(alice_, Spec("nightly-3", 1));
  ASSERT_TRUE(next.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(Estimate(*next).source, "learned");
  EXPECT_NEAR(Estimate(*next).seconds, 1'800, 1);
  // It finishes in 900 s against 1,800 estimated: ratio 0.5 in the histogram.
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 2), "127.0.0.1", "u", "k").ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_EQ(State(*next), "Running");
  Report("gpu", wire::TaskId(*next, 0, 0, 0), "Running");
  clock_.Advance(900'000);
  Report("gpu", wire::TaskId(*next, 0, 0, 0), "Succeeded");
  EXPECT_EQ(controller_->counters().estimate_ratio.Count({}), 1u);
}

// What the estimates are for: backfill. A two-GPU gang waits for a job that
// history says runs an hour; a one-GPU job that history says takes a minute
// runs in the free GPU meanwhile (it ends long before the gang's reservation),
// one that history says takes an hour does not (it would delay the gang),
// though it was submitted first. Without estimates the holder's end is
// unknown, no reservation can be made, and the first in line (the hour-long
// one) would take the GPU.
TEST_F(LearnedEstimateTest, LearnedEstimatesLetShortJobsBackfill) {
  for (int k = 0; k < 3; ++k) RunToSuccess(absl::StrCat("eval-", k), 60);
  for (int k = 0; k < 3; ++k) RunToSuccess(absl::StrCat("pretrain-", k), 3'600);
  auto holder = controller_->Submit(alice_, Spec("pretrain-3", 1));
  ASSERT_TRUE(holder.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  ASSERT_EQ(State(*holder), "Running");
  Report("gpu", wire::TaskId(*holder, 0, 0, 0), "Running");
  clock_.Advance(600'000);  // the holder is expected to end in 50 minutes
  auto gang = controller_->Submit(alice_, Spec("gang", 2));
  auto long_job = controller_->Submit(alice_, Spec("pretrain-4", 1));
  auto short_job = controller_->Submit(alice_, Spec("eval-3", 1));
  ASSERT_TRUE(gang.ok() && short_job.ok() && long_job.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*gang), "Pending");
  EXPECT_EQ(State(*short_job), "Running");
  EXPECT_EQ(State(*long_job), "Pending");
  auto waiting = controller_->GetJob(admin_, *long_job);
  ASSERT_TRUE(waiting.ok());
  EXPECT_EQ(waiting->estimate.source, "learned");
  EXPECT_NEAR(waiting->estimate.seconds, 3'600, 1);
}

// Jobs on node "b" keep taking 1.6x their estimates while the same jobs on
// "a" take what they said: after ten, "b" is reported slow (and "a" is not).
TEST_F(ControllerTest, ANodeWhereJobsRunLongerThanEstimatedIsReportedSlow) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("a", 1), "10.0.0.1", "u", "k").ok());
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("b", 1), "10.0.0.2", "u", "k").ok());
  constexpr char kTenMinutes[] = R"(
runtime_estimate: 10m
tasks:
  - command: ["train"]
    resources: {devices: 1}
)";
  auto slow_reason = [&](const std::string& node) {
    auto nodes = controller_->ListNodes(admin_);
    EXPECT_TRUE(nodes.ok());
    for (const NodeView& v : *nodes) {
      if (v.record.name == node) return v.slow_reason;
    }
    return std::string("?");
  };
  for (int round = 0; round < 10; ++round) {
    EXPECT_EQ(slow_reason("b"), "") << "round " << round;
    ASSERT_TRUE(controller_->Submit(alice_, kTenMinutes).ok());
    ASSERT_TRUE(controller_->Submit(alice_, kTenMinutes).ok());
    ASSERT_TRUE(controller_->RunPass().ok());
    auto on_a = Watch("a"), on_b = Watch("b");
    ASSERT_EQ(on_a.size(), 1u);
    ASSERT_EQ(on_b.size(), 1u);
    Report("a", on_a[0].task_id, "Running");
    Report("b", on_b[0].task_id, "Running");
    clock_.Advance(600'000);
    Report("a", on_a[0].task_id, "Succeeded");
    clock_.Advance(360'000);
    Report("b", on_b[0].task_id, "Succeeded");
  }
  EXPECT_EQ(slow_reason("a"), "");
  EXPECT_THAT(slow_reason("b"), HasSubstr("Slow: its last 10 jobs ran a median 1.60x their estimates"));
  auto m = controller_->CollectMetrics();
  ASSERT_TRUE(m.ok());
  metrics::ExpositionWriter w;
  RenderMetrics(*m, controller_->counters(), w);
  EXPECT_THAT(w.text(), HasSubstr("icos_node_runtime_ratio{node=\"b\"} 1.6"));  // against "a"'s 1.0
}

TEST_F(ControllerTest, WithoutLearningNoEstimateIsMade) {
  options_.learning.enabled = false;
  options_.learning.estimator.min_finished_to_estimate = 0;
  Open();
  auto id = controller_->Submit(alice_, R"(
tasks:
  - command: ["train"]
)");
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(controller_->RunPass().ok());
  auto j = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(j->estimate.source, "");
}

}  // namespace
}  // namespace icos::controller
