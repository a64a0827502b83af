// The scheduling pass, taking capacity back: moves to faster device types,
// preemption (victims by policy, quota reclaim) and reservations that let
// backfill run without delaying the job at the head.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/pass.h"

namespace icos::core {

DeviceTypeId Pass::FasterTypeWorthWaitingFor(const Job& job, const TaskGroup& g, const std::vector<TypeOption>& opts,
                                             bool promise) {
  if (!opt_.wait_for_faster_type || job.runtime_estimate_ms <= 0 || g.replicas != 1 || g.request.devices != 1 ||
      opts.size() < 2) {
    return -1;
  }
  double best = 0;
  for (const TypeOption& o : opts) best = std::max(best, o.throughput);
  if (best <= 0) return -1;
  // Finish time at once on the fastest type that has a free device now.
  double now_finish = std::numeric_limits<double>::infinity();
  DeviceTypeId now_type = -1;
  for (const TypeOption& o : opts) {
    if (o.throughput <= 0 || cluster_.MaxFreeOnOneNode(o.type) < 1) continue;
    const double f = job.runtime_estimate_ms * best / o.throughput;
    if (f < now_finish) now_finish = f, now_type = o.type;
  }
  if (now_type < 0) return -1;  // nothing free: the usual waiting applies
  // The soonest-freeing device of a faster type not yet promised to another job.
  if (promised_.size() != running_.size()) promised_.resize(running_.size(), false);
  int32_t pick = -1;
  // Waiting must win by a margin: the estimate and the freeing time are guesses.
  double pick_finish = now_finish * (1.0 - opt_.faster_type_min_gain);
  DeviceTypeId pick_type = -1;
  for (size_t i = 0; i < running_.size(); ++i) {
    const Running& r = running_[i];
    if (promised_[i] || r.stopped || r.end_ms == std::numeric_limits<int64_t>::max() || r.types.size() != 1) continue;
    for (const TypeOption& o : opts) {
      if (o.type != r.types[0] || o.throughput <= 0 || o.type == now_type) continue;
      const double wait = static_cast<double>(std::max<int64_t>(0, r.end_ms - snap_.now_ms));
      const double f = wait + job.runtime_estimate_ms * best / o.throughput;
      if (f < pick_finish) pick_finish = f, pick = static_cast<int32_t>(i), pick_type = o.type;
    }
  }
  if (pick < 0) return -1;
  if (promise) promised_[pick] = true;
  return pick_type;
}

void Pass::MigrateToFasterTypes(Decisions& out) {
  if (!opt_.migrate_to_faster_type) return;
  if (promised_.size() != running_.size()) promised_.resize(running_.size(), false);
  std::vector<char> stays(running_.size(), 0);  // a move was tried and failed
  const bool honour = reservations_ > 0;
  for (int moves = 0; moves < opt_.max_migrations_per_pass; ++moves) {
    // The move that saves the most time, over every eligible job and faster type
    // with a free device now.
    int32_t pick = -1;
    DeviceTypeId pick_type = -1;
    double pick_gain = 0;
    int64_t pick_left = 0;
    for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
      const Running& r = running_[i];
      if (r.stopped || r.bound_now || promised_[i] || stays[i] || !r.job->preemptible || Exempt(r) ||
          r.end_ms == std::numeric_limits<int64_t>::max() || r.tasks.size() != 1 || r.types.size() != 1 ||
          r.job->groups.size() != 1) {
        continue;
      }
      const TaskGroup& g = r.job->groups[0];
      if (g.request.devices != 1 || g.replicas != 1) continue;
      const std::vector<TypeOption> opts = TypeOptions(g);
      double current = 0;
      for (const TypeOption& o : opts) {
        if (o.type == r.types[0]) current = o.throughput;
      }
      if (current <= 0) continue;
      const double left = static_cast<double>(r.end_ms - snap_.now_ms);
      if (left <= 0) continue;  // due to end now; moving it gains nothing
      for (const TypeOption& o : opts) {
        if (o.throughput <= current || cluster_.MaxFreeOnOneNode(o.type) < 1) continue;
        const double there = left * current / o.throughput + static_cast<double>(opt_.restore_cost_ms);
        const double gain = left - there;
        if (gain >= opt_.faster_type_min_gain * left && gain > pick_gain) {
          pick = i, pick_type = o.type, pick_gain = gain, pick_left = static_cast<int64_t>(there);
        }
      }
    }
    if (pick < 0) return;
    Running& from = running_[pick];
    const Job& job = *from.job;
    const TaskGroup& g = job.groups[0];
    const size_t mark = cluster_.Mark();
    StopRunning(from);
    const QuotaDelta d = TaskDelta(g.request, pick_type);
    std::vector<TaskPlacement> tasks;
    Miss miss;
    const bool placed = quota_.CheckLimits(from.queue, d).empty() &&
                        quota_.CheckBorrowing(from.queue, d, cluster_).empty() &&
                        PlaceGroup(job, g, 0, pick_type, 1, honour, tasks, miss) && tasks.size() == 1;
    if (!placed) {  // the free device is reserved or over quota: leave the job where it is
      cluster_.Rollback(mark);
      for (const QuotaDelta& c : from.charged) quota_.Apply(from.queue, c, +1);
      from.stopped = false;
      stays[pick] = 1;
      continue;
    }
    cluster_.Commit(mark);
    quota_.Apply(from.queue, d, +1);
    MigrateDecision m;
    m.job = job.id;
    m.from_type = cluster_.type_name(from.types[0]);
    m.device_type = cluster_.type_name(pick_type);
    m.tasks = tasks;
    m.reason = absl::StrCat("moves from ", m.from_type, " to a free ", m.device_type, ", where it ends about ",
                            static_cast<int64_t>(pick_gain / 60'000), " min sooner");
    out.migrations.push_back(std::move(m));
    TrackStarted(job, from.queue, std::move(tasks), {d}, snap_.now_ms + pick_left);
    promised_.push_back(false);
    stays.push_back(0);
  }
}

void Pass::NoteHoldings(Running& r) const {
  for (const TaskPlacement& t : r.tasks) {
    for (const DeviceSlice& sl : t.devices) {
      r.held_milli += sl.percent * 10;
      const DeviceTypeId type = cluster_.device(t.node, sl.device).type;
      if (std::find(r.types.begin(), r.types.end(), type) == r.types.end()) r.types.push_back(type);
    }
  }
}

void Pass::StopRunning(Running& r) {
  for (const TaskPlacement& t : r.tasks) cluster_.Release(t);
  for (const QuotaDelta& d : r.charged) quota_.Apply(r.queue, d, -1);
  r.stopped = true;
}

void Pass::RestartRunning(Running& r) {
  for (const TaskPlacement& t : r.tasks) cluster_.Allocate(t);
  for (const QuotaDelta& d : r.charged) quota_.Apply(r.queue, d, +1);
  r.stopped = false;
}

bool Pass::Exempt(const Running& r) const {
  if (opt_.max_interruptions_per_hour > 0 && r.job->recent_interruptions >= opt_.max_interruptions_per_hour) {
    return true;
  }
  const int64_t min_run = quota_.queue(r.queue).min_run_ms;
  return min_run > 0 && snap_.now_ms - r.start_ms < min_run;
}

int64_t Pass::StopCostMs(const Running& r) const {
  const int64_t since = std::max(r.start_ms, r.job->checkpoint_ms);
  return std::max<int64_t>(0, snap_.now_ms - since) + opt_.restore_cost_ms;
}

double Pass::LostMs(const Running& r) const { return r.job->checkpoints ? static_cast<double>(StopCostMs(r)) : 0.0; }

double Pass::LostDeviceS(const Running& r) const {
  return static_cast<double>(r.held_milli) / 1000.0 * static_cast<double>(StopCostMs(r)) / 1000.0;
}

std::vector<int32_t> Pass::FindVictims(const Job& job, int32_t q, const std::vector<int32_t>& candidates,
                                       const std::vector<char>& reclaim) {
  // Greedy: stop candidates in order until the job fits, then give back every
  // victim it can do without (latest picks are kept, earlier ones retried).
  // Leaves cluster and quota exactly as found.
  const size_t mark = cluster_.Mark();
  std::vector<int32_t> chosen;
  bool fits = false;
  for (int32_t v : candidates) {
    if (static_cast<int32_t>(chosen.size()) >= opt_.max_victims) break;
    // Reclaim takes only what is borrowed: never push a lender below its guarantee.
    if (reclaim[v] && !quota_.IsBorrowing(running_[v].queue)) continue;
    StopRunning(running_[v]);
    chosen.push_back(v);
    if (TryPlace(job, q, true, false).ok) {
      fits = true;
      break;
    }
  }
  if (fits) {
    for (size_t i = chosen.size(); i-- > 1;) {
      Running& r = running_[chosen[i - 1]];
      bool fits_back = true;
      for (const TaskPlacement& t : r.tasks) fits_back &= cluster_.CheckFits(t).ok();
      if (!fits_back) continue;
      RestartRunning(r);
      if (TryPlace(job, q, true, false).ok) {
        chosen.erase(chosen.begin() + static_cast<std::ptrdiff_t>(i - 1));
      } else {
        StopRunning(r);
      }
    }
  }
  // Undo: the cluster by its journal, the quota tree and flags by hand.
  for (int32_t v : chosen) {
    running_[v].stopped = false;
    for (const QuotaDelta& d : running_[v].charged) quota_.Apply(running_[v].queue, d, +1);
  }
  cluster_.Rollback(mark);
  if (!fits) chosen.clear();
  return chosen;
}

bool Pass::TryPreempt(const Job& job, int32_t q, Decisions& out) {
  if (!opt_.preemption || !job.preempts || preemption_attempts_ >= opt_.max_preemption_attempts) return false;
  // Victims must hold a device type the job accepts (or the job needs no devices).
  std::vector<char> useful(cluster_.num_types(), 0);
  bool any_devices = false;
  // Reclaim: a queue that would stay within its guarantee on some device type
  // the job accepts may take back what other queues borrowed.
  bool reclaiming = false;
  QuotaDelta host;  // CPU and memory of the whole gang
  for (const TaskGroup& g : job.groups) host += Times(TaskDelta(g.request, -1), g.MinReplicas());
  for (const TaskGroup& g : job.groups) {
    if (!g.request.NeedsDevices()) continue;
    any_devices = true;
    for (const TypeOption& o : TypeOptions(g)) {
      useful[o.type] = 1;
      QuotaDelta d = host;
      d.type = o.type;
      d.device_milli = Times(TaskDelta(g.request, o.type), g.MinReplicas()).device_milli;
      reclaiming |= quota_.WithinGuarantee(q, d);
    }
  }
  if (!any_devices) reclaiming = quota_.WithinGuarantee(q, host);
  const LasOrder* las = dynamic_cast<const LasOrder*>(sched_.order_.get());
  const SjfOrder* srtf = dynamic_cast<const SjfOrder*>(sched_.order_.get());
  if (srtf != nullptr && (!srtf->preemptive() || job.runtime_estimate_ms <= 0)) srtf = nullptr;
  // SRTF compares wall times on the victim's devices: the job's estimate is
  // for its fastest type, and a victim on a slow type looks long only because
  // it is slow there, as the job would be. Comparing unlike times made two
  // jobs take a slow device from each other on every pass.
  std::vector<double> speed_on;  // by device type: the job's pace there against its fastest; 0: not usable
  if (srtf != nullptr) {
    speed_on.assign(cluster_.num_types(), 1.0);
    for (const TaskGroup& g : job.groups) {
      if (!g.request.NeedsDevices()) continue;
      const std::vector<TypeOption> opts = TypeOptions(g);
      double best = 0;
      for (const TypeOption& o : opts) best = std::max(best, o.throughput);
      std::vector<double> group(cluster_.num_types(), 0.0);
      for (const TypeOption& o : opts) group[o.type] = best > 0 ? o.throughput / best : 1.0;
      for (DeviceTypeId t = 0; t < cluster_.num_types(); ++t) speed_on[t] = std::min(speed_on[t], group[t]);
    }
  }
  // The job's expected wall time on the devices `r` holds: at its slowest pace there.
  auto srtf_job_ms_on = [&](const Running& r) {
    double pace = 1.0;
    for (DeviceTypeId t : r.types) {
      if (speed_on[t] > 0) pace = std::min(pace, speed_on[t]);
    }
    return static_cast<double>(job.runtime_estimate_ms) / pace;
  };
  const GittinsOrder* gittins = dynamic_cast<const GittinsOrder*>(sched_.order_.get());
  if (gittins != nullptr && job.runtime_estimate_ms <= 0) gittins = nullptr;
  const double job_rank = gittins != nullptr ? gittins->RankMs(job, RunSoFarMs(job)) : 0;
  std::vector<double> victim_rank(gittins != nullptr ? running_.size() : 0);
  struct Candidate {
    int reclaim_rank;  // 0: reclaims borrowed quota, 1: lower priority
    int32_t priority;
    int level;             // LAS level (higher: more attained service, preempted first)
    double lost_device_s;  // what stopping it throws away: work since its last checkpoint, and the restore
    int64_t start_ms;
    int64_t held;
    JobId id;
    int32_t index;
  };
  std::vector<Candidate> candidates;
  std::vector<char> reclaim(running_.size(), 0);
  std::vector<char> borrowing(quota_.num_queues(), 0);
  for (int32_t qq = 0; qq < quota_.num_queues(); ++qq) borrowing[qq] = reclaiming && qq != q && quota_.IsBorrowing(qq);
  for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
    const Running& r = running_[i];
    if (r.stopped || r.bound_now || !r.job->preemptible || Exempt(r)) continue;
    bool holds_useful = !any_devices;
    for (DeviceTypeId t : r.types) holds_useful |= useful[t] != 0;
    if (!holds_useful) continue;
    // Tiresias: under LAS order a job may also preempt same-priority jobs of
    // its queue that have attained more service (a higher LAS level).
    const bool las_lower = las != nullptr && r.queue == q && r.job->priority == job.priority &&
                           las->Level(r.job->attained_device_s) > las->Level(job.attained_device_s);
    // SRTF: ... or jobs expected to run much longer (the margin keeps two
    // jobs of similar length from trading places on every pass). A job that
    // checkpoints must also be longer by the time the stop throws away: a
    // preemption must save more than it loses (else long jobs that are
    // stopped before their first checkpoint never progress).
    const bool srtf_longer = srtf != nullptr && r.queue == q && r.job->priority == job.priority &&
                             ExpectedLeftMs(r, snap_.now_ms) > kSrtfMargin * srtf_job_ms_on(r) + LostMs(r);
    // Gittins: ... or jobs whose rank is much worse (the same margin).
    bool gittins_worse = false;
    if (gittins != nullptr && r.queue == q && r.job->priority == job.priority) {
      victim_rank[i] = gittins->RankMs(*r.job, RunningAgeMs(r, snap_.now_ms));
      gittins_worse = victim_rank[i] > kSrtfMargin * job_rank + LostMs(r);
    }
    const bool lower = (r.queue == q && r.job->priority < job.priority) || las_lower || srtf_longer || gittins_worse;
    reclaim[i] = borrowing[r.queue];
    if (lower || reclaim[i]) {
      // Higher level: preempted first (LAS: more service; SRTF: longer left;
      // Gittins: worse rank; both in minutes).
      const double minutes = srtf != nullptr      ? ExpectedLeftMs(r, snap_.now_ms) / 60'000.0
                             : gittins != nullptr ? victim_rank[i] / 60'000.0
                                                  : 0.0;
      const int level =
          las != nullptr ? las->Level(r.job->attained_device_s) : static_cast<int>(std::min(minutes, 1e9));
      candidates.push_back(
          {reclaim[i] ? 0 : 1, r.job->priority, level, LostDeviceS(r), r.start_ms, r.held_milli, r.job->id, i});
    }
  }
  if (candidates.empty()) return false;
  ++preemption_attempts_;
  ++stats_.preemption_attempts;
  // Borrowed capacity first, then lowest priority; within that, two greedy
  // orders (least work lost first: the device-seconds since each victim's
  // last checkpoint or run start, plus its restore; largest first: fewest
  // victims), keeping whichever needs fewer victims.
  std::vector<int32_t> least_lost, largest;
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.reclaim_rank, a.priority, b.level, a.lost_device_s, b.start_ms, a.id) <
           std::tie(b.reclaim_rank, b.priority, a.level, b.lost_device_s, a.start_ms, b.id);
  });
  for (const Candidate& c : candidates) least_lost.push_back(c.index);
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.reclaim_rank, a.priority, b.level, b.held, b.start_ms, a.id) <
           std::tie(b.reclaim_rank, b.priority, a.level, a.held, a.start_ms, b.id);
  });
  for (const Candidate& c : candidates) largest.push_back(c.index);
  std::vector<int32_t> chosen = FindVictims(job, q, least_lost, reclaim);
  std::vector<int32_t> alt = FindVictims(job, q, largest, reclaim);
  if (chosen.empty() || (!alt.empty() && alt.size() < chosen.size())) chosen = std::move(alt);
  if (chosen.empty()) return false;  // never preempt for a job that would still not fit

  const size_t mark = cluster_.Mark();
  for (int32_t v : chosen) StopRunning(running_[v]);
  Attempt a = TryPlace(job, q, true, true);
  if (!a.ok) {  // unreachable: FindVictims proved it fits on this very state
    for (int32_t v : chosen) running_[v].stopped = false;
    for (int32_t v : chosen) {
      for (const QuotaDelta& d : running_[v].charged) quota_.Apply(running_[v].queue, d, +1);
    }
    cluster_.Rollback(mark);
    return false;
  }
  cluster_.Commit(mark);
  std::vector<JobId> after;
  for (int32_t i : chosen) {
    const Running& r = running_[i];
    std::string why =
        reclaim[i] ? absl::StrCat("queue '", quota_.queue(r.queue).name, "' borrowed capacity that queue '",
                                  quota_.queue(q).name, "' reclaims for job ", job.id.value())
        : r.job->priority < job.priority
            ? absl::StrCat("job ", job.id.value(), " has higher priority (", job.priority, " > ", r.job->priority, ")")
        : las != nullptr
            ? absl::StrCat("job ", job.id.value(), " has attained less service (LAS level ",
                           las->Level(job.attained_device_s), " < ", las->Level(r.job->attained_device_s), ")")
        : gittins != nullptr ? GittinsReason(job, job_rank, victim_rank[i])
                             : SrtfReason(job, ExpectedLeftMs(r, snap_.now_ms));
    absl::StrAppend(&why, "; it loses about ", static_cast<int64_t>(LostDeviceS(r) / 60.0), " device-min of work",
                    r.job->checkpoint_ms > r.start_ms ? " since its last checkpoint" : "");
    out.preemptions.push_back({r.job->id, job.id, std::move(why)});
    after.push_back(r.job->id);
  }
  Bind(job, q, std::move(a), std::move(after), out);
  failed_shapes_.clear();  // capacity moved; earlier failures may fit now
  return true;
}

void Pass::TryReserve(const Job& job, int32_t q, Decisions& out) {
  // Release running jobs in order of expected end until the job fits: that end
  // is its shadow time and the nodes it would use are reserved (EASY backfill,
  // Lifka 1995; Slurm's sched/backfill).
  std::vector<int32_t> ending;
  for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
    if (!running_[i].stopped && running_[i].end_ms != std::numeric_limits<int64_t>::max()) ending.push_back(i);
  }
  std::sort(ending.begin(), ending.end(), [&](int32_t a, int32_t b) {
    return std::tie(running_[a].end_ms, running_[a].job->id) < std::tie(running_[b].end_ms, running_[b].job->id);
  });
  const size_t mark = cluster_.Mark();
  Attempt found;
  int64_t start = 0;
  for (int32_t i : ending) {
    StopRunning(running_[i]);
    Attempt a = TryPlace(job, q, false, false);
    if (a.ok) {
      found = std::move(a);
      start = std::max(snap_.now_ms, running_[i].end_ms);
      break;
    }
  }
  for (int32_t i : ending) {
    if (running_[i].stopped) {
      running_[i].stopped = false;
      for (const QuotaDelta& d : running_[i].charged) quota_.Apply(running_[i].queue, d, +1);
    }
  }
  cluster_.Rollback(mark);
  if (!found.ok) return;
  ReserveDecision res{job.id, start, {}};
  for (const TaskPlacement& t : found.tasks) {
    if (std::find(res.nodes.begin(), res.nodes.end(), t.node) == res.nodes.end()) res.nodes.push_back(t.node);
  }
  std::sort(res.nodes.begin(), res.nodes.end());
  for (int32_t n : res.nodes) ++excluded_[n];
  if (start < shadow_ms_) shadow_ms_ = start, shadow_job_ = job.id;
  ++reservations_;
  failed_shapes_.clear();  // exclusions changed what fits
  out.reservations.push_back(std::move(res));
}

}  // namespace icos::core
