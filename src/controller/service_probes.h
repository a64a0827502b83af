// Readiness, liveness and startup of services' replicas (issue #22): the controller
// probes each running replica's port as its spec says (an HTTP GET or a TCP
// connect, api::ProbeSpec) and keeps, per replica attempt, whether it may
// take traffic (`icos endpoints`, the gateway) and whether it is alive (a
// replica whose liveness probe fails is restarted).
//
// The probes go from the controller, over the path a gateway in front of
// the service takes, so a replica counts as ready only when it can be
// reached from outside its node. Readiness is soft state: a restarted
// controller probes again (a replica is not ready until it passes again,
// as a new kubelet's pod). Each attempt is judged afresh: a restarted
// replica is not ready until its new run passes.
//
// Thread-safety: all public methods are thread-safe. Probes run on threads
// of their own, never under the controller's lock (the targets are copied
// out first), one per replica and kind at a time; a round waits for them at
// most kRoundWaitMs, so one replica whose probe hangs for its whole timeout
// delays no other.
#ifndef ICOS_CONTROLLER_SERVICE_PROBES_H_
#define ICOS_CONTROLLER_SERVICE_PROBES_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "api/job_spec.h"
#include "common/clock.h"
#include "protocol/wire.h"

namespace icos::controller {

// The three probes of a replica.
enum class ProbeKind { kReadiness, kLiveness, kStartup };

// A running replica to probe.
struct ProbeTarget {
  int64_t job_id = 0;
  int32_t attempt = 0;
  std::string node;         // its node's name: whose agent runs its command probes
  std::string host;         // its node's address
  int32_t port = 0;         // its ICOS_PORT
  api::ProbeSpec probe;     // readiness
  api::ProbeSpec liveness;  // Type::kNone: none
  api::ProbeSpec startup;   // Type::kNone: none; else readiness and liveness wait for it to pass
  int64_t started_ms = 0;   // when its task reported running

  const api::ProbeSpec& Spec(ProbeKind kind) const {
    return kind == ProbeKind::kLiveness ? liveness : kind == ProbeKind::kStartup ? startup : probe;
  }
};

// What the probes decided of one replica attempt.
struct Readiness {
  int32_t attempt = 0;
  bool ready = false;
  int32_t passed_in_row = 0;
  int32_t failed_in_row = 0;
  int64_t next_probe_ms = 0;
  int64_t since_ms = 0;  // when `ready` last changed (or the attempt was first seen)
  std::string reason;    // why it is (not) ready: the last probe's outcome
};

// One probe result folded into `r` by `probe`'s thresholds (Kubernetes'
// rule: ready after success_threshold passes in a row, unready after
// failure_threshold failures in a row).
void ObserveProbe(const api::ProbeSpec& probe, const absl::Status& result, int64_t now_ms, Readiness& r);

// One probe of host:port, bounded by probe.timeout_s: OK when it passed,
// else why not ("GET /healthz answered 503", "connect: Connection refused").
absl::Status ProbeOnce(const std::string& host, int32_t port, const api::ProbeSpec& probe);

class ServiceProber {
 public:
  // `targets` lists the running replicas each round (it takes the
  // controller's lock itself, briefly); `on_dead` is told, once per
  // attempt, of a replica whose liveness or startup probe failed
  // failure_threshold times in a row (the controller restarts it), with
  // the event that says so ("LivenessFailed", "StartupFailed"), outside
  // the prober's locks; `probe` is ProbeOnce but for tests.
  using TargetsFn = std::function<std::vector<ProbeTarget>()>;
  using DeadFn = std::function<void(int64_t job_id, int32_t attempt, const std::string& event, const std::string& why)>;
  using ProbeFn = std::function<absl::Status(const std::string&, int32_t, const api::ProbeSpec&)>;
  ServiceProber(Clock* clock, TargetsFn targets, DeadFn on_dead, ProbeFn probe = ProbeOnce, int64_t tick_ms = 250);
  ~ServiceProber();

  // Its thread calls `f` after each round (the controller's rollouts act
  // on what the round found). Before Start.
  void AfterEachRound(std::function<void()> f) { after_round_ = std::move(f); }
  void Start();
  void Stop();
  // One round at the clock's now: probes the targets due (waiting at most
  // kRoundWaitMs for them; a slower one is folded when it ends), folds the
  // command probes' reports, forgets replicas no longer running, and tells
  // on_dead of the replicas found dead since the last round. The thread
  // calls it every tick; tests call it.
  void Round();
  // The readiness of `job_id`'s attempt `attempt`; nullopt when it is not
  // (or no longer) known.
  std::optional<Readiness> Of(int64_t job_id, int32_t attempt) const;
  // Outcomes of a replica's command probes, as the agent of `node` (its
  // process `instance`) reported them in a heartbeat: folded in order by
  // the next round, each once (by its seq), and only when the replica's
  // current attempt runs on that node.
  void ObserveCommandOutcomes(const std::string& node, const std::string& instance, int64_t job_id, int32_t attempt,
                              const std::vector<wire::ProbeOutcome>& outcomes);

 private:
  // What the probes decided of a replica's current attempt.
  struct Judged {
    Readiness ready;
    Readiness live;     // `ready` here: alive
    Readiness started;  // `ready` here: its startup probe passed (or it has none)
    bool restart_asked = false;
  };
  // Command probe outcomes reported and not yet folded, per replica.
  struct Reported {
    std::string node;
    int32_t attempt = 0;
    std::string instance;
    std::map<ProbeKind, int64_t> last_seq;
    std::map<ProbeKind, std::vector<absl::Status>> queued;
    int64_t updated_ms = 0;
  };
  struct DeadReplica {
    int64_t job_id;
    int32_t attempt;
    std::string event, why;
  };
  // Everything a probe's thread touches: shared with the threads, which
  // may outlive a round (and the prober) while a slow probe waits out its
  // timeout.
  struct State {
    std::mutex mu;
    std::condition_variable cv;  // a probe ended
    std::map<int64_t, Judged> by_job;
    std::map<int64_t, Reported> reported;
    std::set<std::pair<int64_t, ProbeKind>> in_flight;  // (job, kind) probes out now
    std::vector<DeadReplica> dead;                      // to tell on_dead at the next round's end
  };
  // How long a round waits for the probes it sent before it lets them end
  // on their own: most answer at once; one that hangs must not hold up the
  // others, nor the rollouts that follow each round.
  static constexpr int64_t kRoundWaitMs = 2'000;
  static constexpr int64_t kReportedKeepMs = 30'000;
  // Folds `results` of one probe of t into s (REQUIRES s.mu).
  static void Fold(State& s, const ProbeTarget& t, ProbeKind kind, const std::vector<absl::Status>& results,
                   int64_t now_ms);

  Clock* clock_;
  TargetsFn targets_;
  DeadFn on_dead_;
  ProbeFn probe_;
  int64_t tick_ms_;
  std::function<void()> after_round_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
  std::mutex round_mu_;  // one round at a time
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stop_ = false;  // guarded by stop_mu_
  std::thread thread_;
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_SERVICE_PROBES_H_
