#include "parity/live_replay.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <queue>
#include <random>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "api/job_spec.h"
#include "common/clock.h"
#include "controller/controller.h"
#include "core/estimates.h"
#include "core/policy_presets.h"
#include "store/sqlite_state_store.h"

namespace icos::parity {
namespace {

constexpr int64_t kEpochMs = 1'700'000'000'000;  // where the trace's t=0 lies on the fake clock

int64_t ToMs(double s) { return core::SecondsToMs(s); }

// The simulated agents and the job-runtime model around one Controller.
class Replay {
 public:
  Replay(const std::vector<core::Node>& nodes, const std::vector<sim::SimJob>& jobs, const ReplayOptions& options)
      : nodes_(nodes), jobs_(jobs), options_(options), clock_(kEpochMs), state_(jobs.size()) {
    for (const core::Node& n : nodes) {
      max_per_node_ = std::max<int32_t>(max_per_node_, static_cast<int32_t>(n.devices.size()));
      node_index_[n.name] = static_cast<int32_t>(node_index_.size());
      for (const core::Device& d : n.devices) {
        if (std::find(models_.begin(), models_.end(), d.model) == models_.end()) models_.push_back(d.model);
      }
    }
    for (size_t i = 0; i < jobs.size(); ++i) {
      state_[i].remaining_s = jobs[i].duration_s;
      for (const auto& [m, t] : jobs[i].throughput) state_[i].best_tput = std::max(state_[i].best_tput, t);
    }
  }

  absl::StatusOr<sim::SimResult> Run();

 private:
  struct JobState {
    int64_t live_id = 0;
    double remaining_s = 0;
    double best_tput = 0;
    double speed = 1;
    bool restore = false;
    bool running = false;
    bool done = false;
    int32_t attempt = -1;  // the attempt whose tasks run
    int64_t work_from_ms = 0;
    int64_t start_ms = 0;
    int32_t epoch = 0;
    std::set<std::string> tasks;  // task ids of the running attempt
    int32_t first_attempt = -1;   // the attempt that ran first
    std::set<std::string> first_task_ids;
    std::vector<core::TaskPlacement> first_tasks;  // where that attempt's tasks were
  };
  struct Completion {
    int64_t t_ms;
    int32_t job;
    int32_t epoch;
    bool operator>(const Completion& o) const { return std::tie(t_ms, job) > std::tie(o.t_ms, o.job); }
  };
  // What one simulated agent holds: its running tasks, and task ends not yet reported.
  struct Agent {
    std::map<std::string, wire::TaskStatus> running;
    std::vector<wire::TaskStatus> ended;
  };

  absl::Status Setup();
  // Lets every agent whose assignments moved act on them, until none moved.
  // Sets *stopped when a running job was stopped (preempted or moved), which
  // asks for another pass at this instant, as a re-queue does in the simulator.
  absl::Status SyncAgents(int64_t now_ms, bool* stopped);
  absl::Status Heartbeat(const std::string& node);
  // Job i starts its attempt `a.attempt`, whose first task the agent of `node` saw.
  void Start(int32_t i, const wire::Assignment& a, const std::string& node, int64_t now_ms);
  void Stop(int32_t i, int64_t now_ms);
  // Ends every task of job i's running attempt with `state` at now.
  void EndTasks(int32_t i, const char* state, int64_t now_ms);

  const std::vector<core::Node>& nodes_;
  const std::vector<sim::SimJob>& jobs_;
  const ReplayOptions& options_;
  FakeClock clock_;
  std::unique_ptr<store::SqliteStateStore> store_;
  std::unique_ptr<controller::Controller> controller_;
  const controller::Principal admin_{"parity", controller::Role::kAdmin, "admin"};
  bool learned_ = false;  // the policy wants learned estimates (no user estimate in the specs)
  std::vector<std::string> models_;
  std::map<std::string, int32_t> node_index_;
  int32_t max_per_node_ = 1;
  std::vector<JobState> state_;
  std::map<int64_t, int32_t> by_live_id_;
  std::map<std::string, Agent> agents_;
  std::mutex dirty_mu_;
  std::set<std::string> dirty_;  // nodes whose assignment version moved (the controller's listener)
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> completions_;
  sim::SimResult result_;
  absl::Status error_;  // the first impossible start (a type the job has no throughput on)
};

absl::Status Replay::Setup() {
  store::SqliteOptions so;
  so.path = ":memory:";
  auto store = store::SqliteStateStore::Open(so);
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  controller::ControllerOptions co;
  auto preset = core::PolicyPreset(options_.policy);
  if (!preset.ok()) return preset.status();
  co.scheduler = *std::move(preset);
  // Moving a job costs what a preemption costs, as in the simulator.
  co.scheduler.restore_cost_ms = ToMs(options_.restore_delay_s);
  learned_ = core::PolicyWantsLearnedEstimates(options_.policy);
  co.learning.enabled = learned_;
  // The simulator's estimator options. Its fits run in line: in the live
  // cluster a fit lands at the first pass after it ends in real time, which
  // a fake clock cannot reproduce (only when a new model is used differs).
  co.learning.estimator = learn::EstimatorOptions{};
  auto c = controller::Controller::Create(co, store_.get(), &clock_);
  if (!c.ok()) return c.status();
  controller_ = *std::move(c);
  controller_->SetAssignmentListener([this](const std::string& node) {
    std::lock_guard<std::mutex> lock(dirty_mu_);
    dirty_.insert(node);
  });
  std::set<std::string> queues;
  for (const sim::SimJob& j : jobs_) queues.insert(j.queue.empty() ? "default" : j.queue);
  for (const std::string& q : queues) {
    if (absl::Status st = controller_->PutQueue(admin_, core::Queue{.name = q}); !st.ok()) return st;
  }
  for (const core::Node& n : nodes_) {
    auto r = controller_->RegisterNode(admin_, n, n.name, absl::StrCat("http://", n.name, ":1"), "key");
    if (!r.ok()) return r.status();
    agents_[n.name];
  }
  return absl::OkStatus();
}

absl::Status Replay::Heartbeat(const std::string& node) {
  Agent& a = agents_[node];
  std::vector<wire::TaskStatus> statuses;
  for (const auto& [id, s] : a.running) statuses.push_back(s);
  for (const wire::TaskStatus& s : a.ended) statuses.push_back(s);
  a.ended.clear();
  auto reply = controller_->Heartbeat(admin_, node, statuses);
  return reply.status();
}

void Replay::Start(int32_t i, const wire::Assignment& a, const std::string& node, int64_t now_ms) {
  JobState& st = state_[i];
  st.running = true;
  st.attempt = a.attempt;
  st.tasks.clear();
  st.speed = 1.0;
  const core::Node& where = nodes_[node_index_.at(node)];
  if (st.best_tput > 0 && !a.devices.empty()) {
    const std::string& model = where.devices[a.devices[0]].model;
    auto it = jobs_[i].throughput.find(model);
    if (it == jobs_[i].throughput.end() || it->second <= 0) {
      if (error_.ok())
        error_ = absl::InternalError(absl::StrCat("job ", i, " bound to ", model, ", where it has no throughput"));
      return;
    }
    st.speed = it->second / st.best_tput;
  }
  st.start_ms = now_ms;
  st.work_from_ms = now_ms + (st.restore ? ToMs(options_.restore_delay_s) : 0);
  st.restore = false;
  completions_.push({st.work_from_ms + ToMs(st.remaining_s / st.speed), i, st.epoch});
  ++result_.binds;
}

void Replay::Stop(int32_t i, int64_t now_ms) {
  JobState& st = state_[i];
  const double worked_s = std::max<int64_t>(0, now_ms - st.work_from_ms) / 1000.0;
  st.remaining_s = std::max(0.0, st.remaining_s - worked_s * st.speed);
  st.restore = true;
  st.running = false;
  ++st.epoch;
  EndTasks(i, "Killed", now_ms);
}

void Replay::EndTasks(int32_t i, const char* state, int64_t now_ms) {
  JobState& st = state_[i];
  for (auto& [name, agent] : agents_) {
    for (const std::string& id : st.tasks) {
      auto it = agent.running.find(id);
      if (it == agent.running.end()) continue;
      wire::TaskStatus s = it->second;
      s.state = state;
      s.exit_code = std::string(state) == "Succeeded" ? 0 : 137;
      s.end_ms = kEpochMs + now_ms;
      agent.ended.push_back(s);
      agent.running.erase(it);
      std::lock_guard<std::mutex> lock(dirty_mu_);
      dirty_.insert(name);  // it has something to report
    }
  }
  st.tasks.clear();
}

absl::Status Replay::SyncAgents(int64_t now_ms, bool* stopped) {
  for (int round = 0; round < 1000; ++round) {
    std::set<std::string> dirty;
    {
      std::lock_guard<std::mutex> lock(dirty_mu_);
      dirty.swap(dirty_);
    }
    if (dirty.empty()) return absl::OkStatus();
    for (const std::string& node : dirty) {
      Agent& agent = agents_[node];
      if (!agent.ended.empty()) {
        if (absl::Status st = Heartbeat(node); !st.ok()) return st;
      }
      auto watched = controller_->WatchAssignments(admin_, node, 0, 0);
      if (!watched.ok()) return watched.status();
      std::set<std::string> now_assigned;
      bool reported = false;
      for (const wire::Assignment& a : watched->tasks) {
        if (!a.run) continue;  // to be stopped: handled below as no longer assigned
        now_assigned.insert(a.task_id);
        if (agent.running.count(a.task_id)) continue;
        auto it = by_live_id_.find(a.job_id);
        if (it == by_live_id_.end()) return absl::InternalError(absl::StrCat("assignment of unknown job ", a.job_id));
        JobState& st = state_[it->second];
        if (st.done) continue;
        if (!st.running || st.attempt != a.attempt) {
          if (st.running) {
            Stop(it->second, now_ms);
            *stopped = true;
          }
          Start(it->second, a, node, now_ms);
          sim::JobOutcome& o = result_.jobs[it->second];
          if (o.first_start_s < 0) o.first_start_s = now_ms / 1000.0;
        }
        if (st.first_attempt < 0) st.first_attempt = a.attempt;
        if (a.attempt == st.first_attempt && st.first_task_ids.insert(a.task_id).second) {
          core::TaskPlacement p;
          p.node = node_index_.at(node);
          for (int32_t d : a.devices) p.devices.push_back(core::DeviceSlice{.device = d});
          st.first_tasks.push_back(std::move(p));
        }
        st.tasks.insert(a.task_id);
        wire::TaskStatus s;
        s.task_id = a.task_id;
        s.state = "Running";
        s.start_ms = kEpochMs + now_ms;
        agent.running[a.task_id] = s;
        reported = true;
      }
      // Tasks no longer assigned are stopped (a preemption or a move): the
      // whole gang stops with them.
      std::vector<std::string> gone;
      for (const auto& [id, s] : agent.running) {
        if (!now_assigned.count(id)) gone.push_back(id);
      }
      for (const std::string& id : gone) {
        if (!agent.running.count(id)) continue;  // stopped with its gang already
        int64_t job;
        int32_t g, r, attempt;
        if (!wire::ParseTaskId(id, &job, &g, &r, &attempt)) return absl::InternalError("bad task id " + id);
        const int32_t i = by_live_id_.at(job);
        if (state_[i].running && state_[i].attempt == attempt) {
          Stop(i, now_ms);
          ++result_.jobs[i].preemptions;
          ++result_.preemptions;
          *stopped = true;
        }
      }
      if (reported || !agent.ended.empty()) {
        if (absl::Status st = Heartbeat(node); !st.ok()) return st;
      }
    }
  }
  return absl::InternalError("agents did not settle in 1000 rounds");
}

absl::StatusOr<sim::SimResult> Replay::Run() {
  if (absl::Status st = Setup(); !st.ok()) return st;
  result_.policy = options_.policy;
  result_.estimator = "oracle";
  result_.jobs.resize(jobs_.size());
  for (size_t i = 0; i < jobs_.size(); ++i) {
    sim::JobOutcome& o = result_.jobs[i];
    o.id = jobs_[i].id;
    o.arrival_s = jobs_[i].arrival_s;
    o.duration_s = jobs_[i].duration_s;
    o.gpus = jobs_[i].gpus;
    o.estimate_s = o.final_estimate_s = jobs_[i].duration_s;
  }
  size_t next = 0;
  const size_t n = jobs_.size();
  // Something changed since the last pass. Kept from one instant to the
  // next, as the simulator keeps it: when an instant's passes stop at the
  // cap with a stopped job re-queued, the next event's instant looks again.
  bool dirty = false;
  while (next < n || !completions_.empty()) {
    int64_t now = INT64_MAX;
    if (next < n) now = ToMs(jobs_[next].arrival_s);
    if (!completions_.empty()) now = std::min(now, completions_.top().t_ms);
    clock_.Set(kEpochMs + now);
    while (!completions_.empty() && completions_.top().t_ms == now) {
      const Completion c = completions_.top();
      completions_.pop();
      JobState& st = state_[c.job];
      if (c.epoch != st.epoch || !st.running) continue;
      st.running = false;
      st.done = true;
      st.remaining_s = 0;
      EndTasks(c.job, "Succeeded", now);
      ++result_.events;
      dirty = true;
    }
    if (absl::Status s = SyncAgents(now, &dirty); !s.ok()) return s;
    while (next < n && ToMs(jobs_[next].arrival_s) == now) {
      const int32_t i = static_cast<int32_t>(next++);
      const core::Job job = sim::ToCoreJob(jobs_[i], models_, max_per_node_);
      // The simulator's oracle knows each run time: the user's estimate. A
      // -learned policy is given none and learns them, as the simulator's
      // learned estimator does.
      const int64_t estimate_s = learned_ ? 0 : static_cast<int64_t>(std::ceil(jobs_[i].duration_s));
      const std::string spec = SpecFor(job, jobs_[i].name, estimate_s);
      const controller::Principal submitter{"parity", controller::Role::kAdmin, jobs_[i].user};
      auto id = controller_->Submit(submitter, spec);
      if (!id.ok()) return absl::InternalError(absl::StrCat("job ", i, ": ", id.status().message(), "\n", spec));
      state_[i].live_id = *id;
      by_live_id_[*id] = i;
      ++result_.events;
      dirty = true;
    }
    for (int k = 0; dirty && k < options_.max_passes_per_instant; ++k) {
      if (absl::Status s = controller_->RunPass(); !s.ok()) return s;
      ++result_.passes;
      dirty = false;
      if (absl::Status s = SyncAgents(now, &dirty); !s.ok()) return s;
      if (!error_.ok()) return error_;
    }
  }
  // The controller's own record of each job: its end, and rejections.
  for (size_t i = 0; i < n; ++i) {
    auto view = controller_->GetJob(admin_, state_[i].live_id);
    if (!view.ok()) return view.status();
    sim::JobOutcome& o = result_.jobs[i];
    o.first_placement = sim::DescribePlacement(nodes_, state_[i].first_tasks);
    if (view->job.state == store::JobState::kSucceeded) {
      o.finish_s = (view->job.end_ms - kEpochMs) / 1000.0;
    } else {
      o.reason = view->job.reason;
      o.rejected = view->job.state == store::JobState::kFailed;
    }
  }
  return std::move(result_);
}

}  // namespace

std::vector<sim::SimJob> MixedTrace(int n, uint64_t seed, bool heterogeneous) {
  std::mt19937_64 rng(seed);
  std::vector<sim::SimJob> jobs;
  double t = 0;
  const int32_t sizes[] = {1, 1, 1, 2, 4, 8};
  for (int i = 0; i < n; ++i) {
    sim::SimJob j;
    j.id = i;
    t += static_cast<double>(rng() % 600);
    j.arrival_s = t;
    j.duration_s = static_cast<double>(60 + rng() % 7200);
    j.gpus = sizes[rng() % std::size(sizes)];
    j.queue = "default";
    if (heterogeneous) {
      // Gavel-style: every job runs on every type, each at its own speed.
      j.throughput = {{"V100", 1.0 + (rng() % 100) / 50.0}, {"P100", 1.0}, {"K80", 0.2 + (rng() % 60) / 100.0}};
    }
    jobs.push_back(j);
  }
  return jobs;
}

void PrepareForLive(std::vector<sim::SimJob>& jobs) {
  for (sim::SimJob& j : jobs) {
    // A spec's runtime_estimate is whole seconds: so are the run times the
    // oracle estimates are made of.
    j.duration_s = std::ceil(j.duration_s);
    if (j.queue.empty()) j.queue = "default";
    // What the run-time estimator learns from (-learned policies): the live
    // job's name, its user, and its submission time on the fake clock.
    if (j.user.empty()) j.user = "parity";
    j.name = api::ToJobName(j.name);  // a spec accepts trace names such as "Recommendation (batch size 2048)"
    if (j.name.empty()) j.name = absl::StrCat("trace-", &j - jobs.data());
    j.submit_unix_s = static_cast<double>(kEpochMs) / 1000.0 + j.arrival_s;
    const int64_t units = std::max<int32_t>(1, j.gpus);
    if (j.cpu_milli <= 0) j.cpu_milli = 1000 * units;
    if (j.memory_mib <= 0) j.memory_mib = 1024 * units;
  }
}

std::string SpecFor(const core::Job& job, const std::string& name, int64_t estimate_s) {
  api::JobSpec spec;
  spec.name = name;
  spec.queue = job.queue.empty() ? "default" : job.queue;
  spec.runtime_estimate_s = std::max<int64_t>(0, estimate_s);
  for (const core::TaskGroup& g : job.groups) {
    api::TaskSpec t;
    t.name = g.name;
    t.replicas = g.replicas;
    t.command = {"true"};
    t.cpu_milli = g.request.cpu_milli;
    t.memory_mib = g.request.memory_mib;
    t.devices = g.request.devices;
    t.device_percent = g.request.device_percent;
    for (const core::DeviceChoice& c : g.device_choices) t.device_wishes.push_back({c.vendor, c.model, c.throughput});
    spec.tasks.push_back(std::move(t));
  }
  return api::JobSpecToJson(spec);
}

absl::StatusOr<sim::SimResult> ReplayLive(const std::vector<core::Node>& nodes, const std::vector<sim::SimJob>& jobs,
                                          const ReplayOptions& options) {
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (jobs[i].id != static_cast<int64_t>(i)) return absl::InvalidArgumentError("job ids must be 0..n-1");
  }
  Replay replay(nodes, jobs, options);
  return replay.Run();
}

ParityReport Compare(const sim::SimResult& simulated, const sim::SimResult& live, double tolerance_s) {
  ParityReport r;
  r.jobs = static_cast<int64_t>(std::min(simulated.jobs.size(), live.jobs.size()));
  for (int64_t i = 0; i < r.jobs; ++i) {
    const sim::JobOutcome& s = simulated.jobs[i];
    const sim::JobOutcome& l = live.jobs[i];
    const double start_diff = std::abs(s.first_start_s - l.first_start_s);
    const double jct_diff = (s.finish_s < 0) != (l.finish_s < 0) ? INFINITY : std::abs(s.finish_s - l.finish_s);
    const bool same_place = s.first_placement == l.first_placement;
    r.max_start_diff_s = std::max(r.max_start_diff_s, start_diff);
    r.max_jct_diff_s = std::max(r.max_jct_diff_s, jct_diff);
    if (!same_place) ++r.placement_diffs;
    const bool same = start_diff <= tolerance_s && jct_diff <= tolerance_s && same_place && s.rejected == l.rejected;
    if (same) {
      ++r.identical;
    } else if (r.first_diff_job < 0) {
      r.first_diff_job = i;
      r.first_diff = absl::StrCat(
          "job ", i, ": start ", s.first_start_s, " vs ", l.first_start_s, ", finish ", s.finish_s, " vs ", l.finish_s,
          ", placement '", s.first_placement, "' vs '", l.first_placement, "', preemptions ", s.preemptions, " vs ",
          l.preemptions, s.rejected != l.rejected ? absl::StrCat(", rejected ", s.rejected, " vs ", l.rejected) : "");
    }
  }
  return r;
}

}  // namespace icos::parity
