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
// Probes in flight at once in a round.
constexpr size_t kProbeThreads = 16;
}  // namespace

void ServiceProber::Round() {
  std::lock_guard<std::mutex> round(round_mu_);
  const std::vector<ProbeTarget> targets = targets_();
  const int64_t now = clock_->NowMs();
  enum class Kind { kReadiness, kLiveness, kStartup };
  struct Due {
    const ProbeTarget* target;
    Kind kind;
  };
  std::vector<Due> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::set<int64_t> running;
    for (const ProbeTarget& t : targets) {
      running.insert(t.job_id);
      auto [it, added] = by_job_.try_emplace(t.job_id);
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
      if (!j.started.ready) {  // readiness and liveness wait for the startup probe
        if (now >= j.started.next_probe_ms && !j.restart_asked) due.push_back({&t, Kind::kStartup});
        continue;
      }
      if (t.probe.type != api::ProbeSpec::Type::kNone && now >= j.ready.next_probe_ms) {
        due.push_back({&t, Kind::kReadiness});
      }
      if (t.liveness.type != api::ProbeSpec::Type::kNone && now >= j.live.next_probe_ms && !j.restart_asked) {
        due.push_back({&t, Kind::kLiveness});
      }
    }
    std::erase_if(by_job_, [&](const auto& entry) { return !running.count(entry.first); });
  }
  // Outside the lock: a probe may wait its whole timeout. Up to
  // kProbeThreads at once, so that replicas that time out delay a round by
  // about one timeout, not the sum of theirs.
  std::vector<std::tuple<int64_t, int32_t, std::string, std::string>> dead;
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < due.size(); i = next++) {
      const ProbeTarget& t = *due[i].target;
      const Kind kind = due[i].kind;
      const api::ProbeSpec& spec = kind == Kind::kLiveness ? t.liveness : kind == Kind::kStartup ? t.startup : t.probe;
      const absl::Status result = probe_(t.host, t.port, spec);
      std::lock_guard<std::mutex> lock(mu_);
      auto it = by_job_.find(t.job_id);
      if (it == by_job_.end() || it->second.ready.attempt != t.attempt) continue;
      Judged& j = it->second;
      Readiness& r = kind == Kind::kLiveness ? j.live : kind == Kind::kStartup ? j.started : j.ready;
      const int64_t now_ms = clock_->NowMs();
      ObserveProbe(spec, result, now_ms, r);
      if (kind == Kind::kLiveness && !r.ready && !j.restart_asked) {
        j.restart_asked = true;
        dead.emplace_back(t.job_id, t.attempt, "LivenessFailed", absl::StrCat("its liveness probe failed: ", r.reason));
      }
      if (kind != Kind::kStartup) continue;
      if (r.ready) {  // started: readiness and liveness from now on
        const bool unprobed = t.probe.type == api::ProbeSpec::Type::kNone;
        j.ready.ready = unprobed;
        j.ready.since_ms = now_ms;
        j.ready.reason = unprobed ? "running; it has no readiness probe" : "its startup probe passed";
      } else if (r.failed_in_row >= spec.failure_threshold && !j.restart_asked) {
        j.restart_asked = true;
        j.ready.reason = absl::StrCat("its startup probe failed: ", r.reason);
        dead.emplace_back(t.job_id, t.attempt, "StartupFailed",
                          absl::StrCat("its startup probe failed ", r.failed_in_row,
                                       " times in a row, the last: ", result.message()));
      } else {
        j.ready.reason = absl::StrCat("waiting for its startup probe: ", r.reason);
      }
    }
  };
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < std::min(due.size(), kProbeThreads); ++i) helpers.emplace_back(work);
  work();
  for (std::thread& h : helpers) h.join();
  // Outside the locks: the callback takes the controller's.
  if (on_dead_) {
    for (const auto& [job, attempt, event, why] : dead) on_dead_(job, attempt, event, why);
  }
}

std::optional<Readiness> ServiceProber::Of(int64_t job_id, int32_t attempt) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_job_.find(job_id);
  if (it == by_job_.end() || it->second.ready.attempt != attempt) return std::nullopt;
  return it->second.ready;
}

}  // namespace icos::controller
