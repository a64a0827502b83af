#include "controller/service_probes.h"

#include <fcntl.h>
#include <httplib.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "absl/strings/str_cat.h"

namespace icos::controller {
namespace {

// A connect to host:port within timeout_ms: OK, or why not.
absl::Status Connect(const std::string& host, int32_t port, int64_t timeout_ms) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found); rc != 0) {
    return absl::UnavailableError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::string why = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int err = connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{.fd = fd, .events = POLLOUT, .revents = 0};
      const int n = poll(&p, 1, static_cast<int>(timeout_ms));
      socklen_t len = sizeof(err);
      if (n == 0) {
        err = ETIMEDOUT;
      } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
        err = errno;
      }
    }
    close(fd);
    if (err == 0) {
      freeaddrinfo(found);
      return absl::OkStatus();
    }
    why = std::strerror(err);
  }
  freeaddrinfo(found);
  return absl::UnavailableError(absl::StrCat("connect to port ", port, ": ", why));
}

}  // namespace

void ObserveProbe(const api::ProbeSpec& probe, const absl::Status& result, int64_t now_ms, Readiness& r) {
  if (result.ok()) {
    ++r.passed_in_row;
    r.failed_in_row = 0;
    r.reason = "the last probe passed";
    if (!r.ready && r.passed_in_row >= probe.success_threshold) {
      r.ready = true;
      r.since_ms = now_ms;
    }
    if (!r.ready) {
      r.reason = absl::StrCat(r.passed_in_row, " of ", probe.success_threshold, " probes in a row passed");
    }
  } else {
    ++r.failed_in_row;
    r.passed_in_row = 0;
    r.reason = absl::StrCat("probe failed: ", result.message());
    if (r.ready && r.failed_in_row >= probe.failure_threshold) {
      r.ready = false;
      r.since_ms = now_ms;
      r.reason = absl::StrCat(r.failed_in_row, " probes in a row failed, the last: ", result.message());
    }
  }
  r.next_probe_ms = now_ms + probe.period_s * 1000;
}

absl::Status ProbeOnce(const std::string& host, int32_t port, const api::ProbeSpec& probe) {
  const int64_t timeout_ms = probe.timeout_s * 1000;
  if (probe.type == api::ProbeSpec::Type::kCommand) {
    return absl::FailedPreconditionError("a command probe runs on the replica's node, not from the controller");
  }
  if (probe.type == api::ProbeSpec::Type::kTcp) return Connect(host, port, timeout_ms);
  // A fresh connection per probe, without keep-alive: what a new client of
  // the replica would meet.
  httplib::Client client(host, port);
  client.set_connection_timeout(std::chrono::milliseconds(timeout_ms));
  client.set_read_timeout(std::chrono::milliseconds(timeout_ms));
  client.set_write_timeout(std::chrono::milliseconds(timeout_ms));
  client.set_keep_alive(false);
  httplib::Result res = client.Get(probe.http_path);
  if (!res) {
    return absl::UnavailableError(
        absl::StrCat("GET ", probe.http_path, " on port ", port, ": ", httplib::to_string(res.error())));
  }
  if (res->status < 200 || res->status >= 400) {
    return absl::UnavailableError(absl::StrCat("GET ", probe.http_path, " answered ", res->status));
  }
  return absl::OkStatus();
}

ServiceProber::ServiceProber(Clock* clock, TargetsFn targets, DeadFn on_dead, ProbeFn probe, int64_t tick_ms)
    : clock_(clock),
      targets_(std::move(targets)),
      on_dead_(std::move(on_dead)),
      probe_(std::move(probe)),
      tick_ms_(tick_ms) {}

ServiceProber::~ServiceProber() { Stop(); }

void ServiceProber::Start() {
  std::lock_guard<std::mutex> lock(stop_mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] {
    std::unique_lock<std::mutex> lock(stop_mu_);
    while (!stop_) {
      lock.unlock();
      Round();
      if (after_round_) after_round_();
      lock.lock();
      stop_cv_.wait_for(lock, std::chrono::milliseconds(tick_ms_), [&] { return stop_; });
    }
  });
}

void ServiceProber::Stop() {
  {
    std::lock_guard<std::mutex> lock(stop_mu_);
    stop_ = true;
    stop_cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

namespace {

bool IsCommand(const api::ProbeSpec& p) { return p.type == api::ProbeSpec::Type::kCommand; }

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

void ServiceProber::ObserveCommandOutcomes(const std::string& node, const std::string& instance, int64_t job_id,
                                           int32_t attempt, const std::vector<wire::ProbeOutcome>& outcomes) {
  if (outcomes.empty()) return;
  std::lock_guard<std::mutex> lock(state_->mu);
  Reported& r = state_->reported[job_id];
  if (r.attempt != attempt || r.node != node) r = Reported{.node = node, .attempt = attempt};
  if (r.instance != instance) {  // another agent process counts its runs afresh
    r.instance = instance;
    r.last_seq.clear();
  }
  r.updated_ms = clock_->NowMs();
  for (const wire::ProbeOutcome& o : outcomes) {
    const ProbeKind kind = o.kind == "liveness"  ? ProbeKind::kLiveness
                           : o.kind == "startup" ? ProbeKind::kStartup
                                                 : ProbeKind::kReadiness;
    int64_t& last = r.last_seq[kind];
    if (o.seq <= last) continue;  // sent again after a lost answer: counted already
    last = o.seq;
    std::vector<absl::Status>& queue = r.queued[kind];
    queue.push_back(o.passed ? absl::OkStatus() : absl::UnavailableError(o.message));
    if (queue.size() > wire::kMaxProbeOutcomes) queue.erase(queue.begin());
  }
}

void ServiceProber::Fold(State& s, const ProbeTarget& t, ProbeKind kind, const std::vector<absl::Status>& results,
                         int64_t now_ms) {
  const api::ProbeSpec& spec = t.Spec(kind);
  for (const absl::Status& result : results) {
    auto it = s.by_job.find(t.job_id);
    if (it == s.by_job.end() || it->second.ready.attempt != t.attempt) return;
    Judged& j = it->second;
    if (j.restart_asked && kind != ProbeKind::kReadiness) return;  // being restarted: nothing more to decide
    Readiness& r = kind == ProbeKind::kLiveness ? j.live : kind == ProbeKind::kStartup ? j.started : j.ready;
    ObserveProbe(spec, result, now_ms, r);
    if (kind == ProbeKind::kLiveness && !r.ready) {
      j.restart_asked = true;
      s.dead.push_back({t.job_id, t.attempt, "LivenessFailed", absl::StrCat("its liveness probe failed: ", r.reason)});
    }
    if (kind != ProbeKind::kStartup) continue;
    if (r.ready) {  // started: readiness and liveness from now on
      const bool unprobed = t.probe.type == api::ProbeSpec::Type::kNone;
      j.ready.ready = unprobed;
      j.ready.since_ms = now_ms;
      j.ready.reason = unprobed ? "running; it has no readiness probe" : "its startup probe passed";
      return;  // what came after was judged by readiness and liveness
    }
    if (r.failed_in_row >= spec.failure_threshold) {
      j.restart_asked = true;
      j.ready.reason = absl::StrCat("its startup probe failed: ", r.reason);
      s.dead.push_back({t.job_id, t.attempt, "StartupFailed",
                        absl::StrCat("its startup probe failed ", r.failed_in_row,
                                     " times in a row, the last: ", result.message())});
    } else {
      j.ready.reason = absl::StrCat("waiting for its startup probe: ", r.reason);
    }
  }
}

void ServiceProber::Round() {
  std::lock_guard<std::mutex> round(round_mu_);
  const std::vector<ProbeTarget> targets = targets_();
  const int64_t now = clock_->NowMs();
  State& s = *state_;
  struct Due {
    const ProbeTarget* target;
    ProbeKind kind;
    // A command probe's outcomes its agent reported, in order; empty: probe now.
    std::vector<absl::Status> reported;
  };
  std::vector<Due> due;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    std::set<int64_t> running;
    for (const ProbeTarget& t : targets) {
      running.insert(t.job_id);
      auto [it, added] = s.by_job.try_emplace(t.job_id);
      Judged& j = it->second;
      if (added || j.ready.attempt != t.attempt) {  // a new run is judged afresh
        const bool unprobed = t.probe.type == api::ProbeSpec::Type::kNone;
        const bool no_startup = t.startup.type == api::ProbeSpec::Type::kNone;
        j.ready = Readiness{.attempt = t.attempt,
                            .ready = unprobed && no_startup,
                            .next_probe_ms = t.started_ms + t.probe.initial_delay_s * 1000,
                            .since_ms = now,
                            .reason = !no_startup ? "waiting for its startup probe"
                                      : unprobed  ? "running; it has no readiness probe"
                                                  : "not probed yet"};
        j.started = Readiness{.attempt = t.attempt,
                              .ready = no_startup,
                              .next_probe_ms = t.started_ms + t.startup.initial_delay_s * 1000,
                              .since_ms = now};
        // Alive until its liveness probe says otherwise (Kubernetes' rule).
        j.live = Readiness{.attempt = t.attempt,
                           .ready = true,
                           .next_probe_ms = t.started_ms + t.liveness.initial_delay_s * 1000,
                           .since_ms = now};
        j.restart_asked = false;
      }
      // What the replica's own agent reported of its command probes; only
      // that agent may speak for it (a node reports its own replicas only).
      std::map<ProbeKind, std::vector<absl::Status>> reported;
      if (auto r = s.reported.find(t.job_id); r != s.reported.end()) {
        if (r->second.attempt == t.attempt && r->second.node == t.node) reported.swap(r->second.queued);
        r->second.queued.clear();
      }
      auto want = [&](const api::ProbeSpec& spec, ProbeKind kind, int64_t next_ms) {
        if (spec.type == api::ProbeSpec::Type::kNone) return;
        if (!IsCommand(spec)) {
          // One probe of a replica's kind at a time: a slow one is still out.
          if (now >= next_ms && !s.in_flight.count({t.job_id, kind})) due.push_back({&t, kind, {}});
        } else if (!reported[kind].empty()) {
          due.push_back({&t, kind, std::move(reported[kind])});
        }
      };
      if (!j.started.ready) {  // readiness and liveness wait for the startup probe
        if (!j.restart_asked) want(t.startup, ProbeKind::kStartup, j.started.next_probe_ms);
        continue;
      }
      want(t.probe, ProbeKind::kReadiness, j.ready.next_probe_ms);
      if (!j.restart_asked) want(t.liveness, ProbeKind::kLiveness, j.live.next_probe_ms);
    }
    std::erase_if(s.by_job, [&](const auto& entry) { return !running.count(entry.first); });
    // Reports of replicas not (or not yet) running here are kept a while: a
    // replica's first report may come before a round sees it running.
    std::erase_if(s.reported, [&](const auto& entry) {
      return !running.count(entry.first) && now - entry.second.updated_ms > kReportedKeepMs;
    });
    // What agents reported is folded now; the probes the controller sends
    // itself each go out on a thread of their own, below.
    for (const Due& d : due) {
      if (!d.reported.empty()) Fold(s, *d.target, d.kind, d.reported, now);
    }
    for (const Due& d : due) {
      if (d.reported.empty()) s.in_flight.insert({d.target->job_id, d.kind});
    }
  }
  // Each probe on a thread of its own, outside the lock (one may wait its
  // whole timeout, up to an hour as a spec may ask): the round waits for
  // them at most kRoundWaitMs, and one still out then is folded when it
  // ends, by its thread, into the shared state. So a replica whose port
  // never answers delays nobody else's readiness, restarts or rollouts.
  const int64_t started = SteadyMs();
  std::vector<std::pair<int64_t, ProbeKind>> launched;
  for (const Due& d : due) {
    if (!d.reported.empty()) continue;
    launched.push_back({d.target->job_id, d.kind});
    std::thread([state = state_, probe = probe_, t = *d.target, kind = d.kind, now, started] {
      const absl::Status result = probe(t.host, t.port, t.Spec(kind));
      std::lock_guard<std::mutex> lock(state->mu);
      state->in_flight.erase({t.job_id, kind});
      // Judged at the round's time when it answered within the round's
      // wait; a slow one at its end.
      const int64_t took_ms = SteadyMs() - started;
      Fold(*state, t, kind, {result}, took_ms < kRoundWaitMs ? now : now + took_ms);
      state->cv.notify_all();
    }).detach();
  }
  std::vector<DeadReplica> dead;
  {
    std::unique_lock<std::mutex> lock(s.mu);
    s.cv.wait_until(lock, std::chrono::steady_clock::now() + std::chrono::milliseconds(kRoundWaitMs), [&] {
      return std::none_of(launched.begin(), launched.end(), [&](const auto& k) { return s.in_flight.count(k) > 0; });
    });
    dead.swap(s.dead);
  }
  // Outside the locks: the callback takes the controller's.
  if (on_dead_) {
    for (const DeadReplica& d : dead) on_dead_(d.job_id, d.attempt, d.event, d.why);
  }
}

std::optional<Readiness> ServiceProber::Of(int64_t job_id, int32_t attempt) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->by_job.find(job_id);
  if (it == state_->by_job.end() || it->second.ready.attempt != attempt) return std::nullopt;
  return it->second.ready;
}

}  // namespace icos::controller
