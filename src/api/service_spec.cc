// The job spec's service parts: the `service:` block (replicas, readiness
// probe) and the rules that keep a service's fields and a batch job's apart.
#include <algorithm>
#include <map>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "api/job_spec.h"
#include "api/spec_parser.h"

namespace icos::api::detail {
namespace {

constexpr absl::string_view kServiceFields[] = {"replicas", "readiness", "liveness", "startup", "update", "autoscale"};
constexpr absl::string_view kAutoscaleFields[] = {"min",           "max",    "target_rps",       "target_concurrency",
                                                  "target_p90_ms", "window", "scale_down_delay", "cold_start_timeout"};
constexpr absl::string_view kUpdateFields[] = {"max_surge", "max_unavailable", "ready_timeout"};
// A new replica may take a while to load its model, not a day.
constexpr int64_t kMaxReadyTimeoutS = 24 * 3600;
constexpr absl::string_view kProbeFields[] = {"http",   "tcp",     "command",           "initial_delay",
                                              "period", "timeout", "success_threshold", "failure_threshold"};
// A probe more often than each second, or waiting longer than its period,
// is a mistake; a threshold past 100 probes never decides.
constexpr int64_t kMinProbePeriodS = 1;
constexpr int64_t kMaxProbeDelayS = 3600;
constexpr int32_t kMaxProbeThreshold = 100;
// The fields a batch job ends by, which a service (running until cancelled)
// may not give, with why.
constexpr std::pair<absl::string_view, absl::string_view> kBatchOnlyFields[] = {
    {"array", "a service's copies are service.replicas"},
    {"dependencies", "a service starts when submitted and runs until cancelled"},
    {"time_limit", "a service runs until cancelled"},
    {"runtime_estimate", "a service runs until cancelled"},
    {"checkpoint", "a service's replicas restart from their start; they keep no checkpoint"},
};

}  // namespace

absl::Status Parser::Service(const Field& f, ServiceSpec& service) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {replicas: 2, readiness: {http: /healthz}}");
  if (!entries.ok()) return entries.status();
  std::optional<Field> autoscale_field;
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kServiceFields)) return UnknownField(e, kServiceFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "replicas") {
      // Each replica is a job of its own in the store: an array's bound.
      absl::StatusOr<int64_t> v = Integer(e.field, 1, limits_.max_array_size);
      if (!v.ok()) return v.status();
      service.replicas = static_cast<int32_t>(*v);
    } else if (e.key == "update") {
      if (absl::Status s = Rollout(e.field, service.update); !s.ok()) return s;
    } else if (e.key == "autoscale") {
      if (absl::Status s = Autoscale(e.field, service.autoscale); !s.ok()) return s;
      autoscale_field = e.field;
    } else if (e.key == "startup") {
      if (absl::Status s = Probe(e.field, service.startup); !s.ok()) return s;
      if (service.startup.success_threshold != 1) {
        return Invalid(e.field, "a startup probe passes once: success_threshold must be 1");
      }
    } else if (absl::Status s = Probe(e.field, e.key == "liveness" ? service.liveness : service.readiness); !s.ok()) {
      return s;
    }
  }
  if (const AutoscaleSpec& a = service.autoscale;
      a.enabled() && (service.replicas < a.min || service.replicas > a.max)) {
    return Invalid(*autoscale_field, absl::StrCat("replicas (", service.replicas, ", the count to start with) must be ",
                                                  "between min (", a.min, ") and max (", a.max, ")"));
  }
  return absl::OkStatus();
}

absl::Status Parser::Autoscale(const Field& f, AutoscaleSpec& a) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {min: 1, max: 4, target_rps: 50}");
  if (!entries.ok()) return entries.status();
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kAutoscaleFields)) return UnknownField(e, kAutoscaleFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "window" || e.key == "scale_down_delay" || e.key == "cold_start_timeout") {
      absl::StatusOr<int64_t> v = Duration(e.field);
      if (!v.ok()) return v.status();
      if (*v < 1 || *v > 3600) return Invalid(e.field, "must be between 1s and 3600s");
      (e.key == "window"             ? a.window_s
       : e.key == "scale_down_delay" ? a.scale_down_delay_s
                                     : a.cold_start_timeout_s) = *v;
      continue;
    }
    const bool bound = e.key == "min" || e.key == "max";
    absl::StatusOr<int64_t> v = Integer(e.field, bound ? 0 : 1, bound ? limits_.max_array_size : 1'000'000);
    if (!v.ok()) return v.status();
    const auto n = static_cast<int32_t>(*v);
    if (e.key == "min") a.min = n;
    if (e.key == "max") a.max = n;
    if (e.key == "target_rps") a.target_rps = n;
    if (e.key == "target_concurrency") a.target_concurrency = n;
    if (e.key == "target_p90_ms") a.target_p90_ms = n;
  }
  if (a.max < 1) return Invalid(f, "say max, the most replicas (at least 1)");
  if (a.min > a.max) return Invalid(f, absl::StrCat("min (", a.min, ") is above max (", a.max, ")"));
  if ((a.target_rps > 0) + (a.target_concurrency > 0) + (a.target_p90_ms > 0) != 1) {
    return Invalid(f, "give exactly one target: target_rps, target_concurrency or target_p90_ms (per replica)");
  }
  return absl::OkStatus();
}

}  // namespace icos::api::detail

namespace icos::api {

int32_t RolloutSpec::SurgeFor(int32_t replicas) const {
  if (!max_surge_percent) return max_surge;
  return static_cast<int32_t>((static_cast<int64_t>(replicas) * max_surge + 99) / 100);
}

int32_t RolloutSpec::UnavailableFor(int32_t replicas) const {
  const int32_t unavailable = max_unavailable_percent
                                  ? static_cast<int32_t>(static_cast<int64_t>(replicas) * max_unavailable / 100)
                                  : max_unavailable;
  // Both 0 would replace nothing, ever (Kubernetes then allows one).
  return unavailable == 0 && SurgeFor(replicas) == 0 ? 1 : unavailable;
}

}  // namespace icos::api

namespace icos::api::detail {

absl::Status Parser::Rollout(const Field& f, RolloutSpec& update) {
  absl::StatusOr<std::vector<Entry>> entries =
      Entries(f, "a mapping like {max_surge: 1, max_unavailable: 0, ready_timeout: 5m}");
  if (!entries.ok()) return entries.status();
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kUpdateFields)) return UnknownField(e, kUpdateFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "ready_timeout") {
      absl::StatusOr<int64_t> v = Duration(e.field);
      if (!v.ok()) return v.status();
      if (*v < 1 || *v > kMaxReadyTimeoutS) {
        return Invalid(e.field, absl::StrCat("must be between 1s and ", kMaxReadyTimeoutS / 3600, "h"));
      }
      update.ready_timeout_s = *v;
      continue;
    }
    const bool surge = e.key == "max_surge";
    (surge ? update.max_surge_percent : update.max_unavailable_percent) = false;
    if (e.field.node.IsScalar() && absl::EndsWith(e.field.node.Scalar(), "%")) {
      int64_t percent = 0;
      if (!absl::SimpleAtoi(absl::StripSuffix(e.field.node.Scalar(), "%"), &percent) || percent < 0 || percent > 100) {
        return Invalid(e.field, "a percentage is 0% to 100% of replicas");
      }
      (surge ? update.max_surge : update.max_unavailable) = static_cast<int32_t>(percent);
      (surge ? update.max_surge_percent : update.max_unavailable_percent) = true;
      continue;
    }
    absl::StatusOr<int64_t> v = Integer(e.field, 0, limits_.max_array_size);
    if (!v.ok()) return v.status();
    (surge ? update.max_surge : update.max_unavailable) = static_cast<int32_t>(*v);
  }
  if (update.max_surge == 0 && update.max_unavailable == 0) {
    return Invalid(f, "max_surge and max_unavailable are both 0: no replica could ever be replaced");
  }
  return absl::OkStatus();
}

absl::Status Parser::Probe(const Field& f, ProbeSpec& probe) {
  absl::StatusOr<std::vector<Entry>> entries =
      Entries(f, "a mapping like {http: /healthz, period: 2s}, {tcp: true} or {command: [test, -f, ready]}");
  if (!entries.ok()) return entries.status();
  std::optional<Field> timeout_field;
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kProbeFields)) return UnknownField(e, kProbeFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "http" || e.key == "tcp" || e.key == "command") {
      if (probe.type != ProbeSpec::Type::kNone) return Invalid(e.field, "give one of http, tcp and command, not two");
    }
    if (e.key == "http") {
      absl::StatusOr<std::string> path = Text(e.field);
      if (!path.ok()) return path.status();
      // Sent as the request line's target: a path, nothing that could split
      // the request.
      const bool clean = std::none_of(path->begin(), path->end(),
                                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
      if (!absl::StartsWith(*path, "/") || !clean || path->size() > 1024) {
        return Invalid(e.field,
                       "must be a URL path like /healthz: starting with '/', no spaces or control "
                       "characters, at most 1024 bytes");
      }
      probe.type = ProbeSpec::Type::kHttp;
      probe.http_path = *std::move(path);
    } else if (e.key == "command") {
      absl::StatusOr<std::vector<std::string>> argv = Command(e.field);
      if (!argv.ok()) return argv.status();
      probe.type = ProbeSpec::Type::kCommand;
      probe.command = *std::move(argv);
    } else if (e.key == "tcp") {
      absl::StatusOr<bool> on = Bool(e.field);
      if (!on.ok()) return on.status();
      if (*on) probe.type = ProbeSpec::Type::kTcp;
    } else if (e.key == "success_threshold" || e.key == "failure_threshold") {
      absl::StatusOr<int64_t> v = Integer(e.field, 1, kMaxProbeThreshold);
      if (!v.ok()) return v.status();
      (e.key == "success_threshold" ? probe.success_threshold : probe.failure_threshold) = static_cast<int32_t>(*v);
    } else {
      absl::StatusOr<int64_t> v = Duration(e.field);
      if (!v.ok()) return v.status();
      const int64_t lo = e.key == "initial_delay" ? 0 : kMinProbePeriodS;
      if (*v < lo || *v > kMaxProbeDelayS) {
        return Invalid(e.field, absl::StrCat("must be between ", lo, "s and ", kMaxProbeDelayS, "s"));
      }
      if (e.key == "initial_delay") probe.initial_delay_s = *v;
      if (e.key == "period") probe.period_s = *v;
      if (e.key == "timeout") {
        probe.timeout_s = *v;
        timeout_field = e.field;
      }
    }
  }
  if (probe.type == ProbeSpec::Type::kNone) {
    return Invalid(f,
                   "say what to probe: http: /path (a GET answered 2xx or 3xx), tcp: true (a connect) or "
                   "command: [program, args] (run on the replica's node, passing when it exits 0)");
  }
  if (timeout_field && probe.timeout_s > probe.period_s) {
    return Invalid(*timeout_field, absl::StrCat("is longer than the period (", probe.period_s,
                                                "s): a probe would still wait when the next is due"));
  }
  return absl::OkStatus();
}

absl::Status Parser::CheckKind(JobSpec& spec, const std::map<std::string, Field>& given, const Field& root) {
  auto at = [&](const std::string& key) -> const Field& {
    auto it = given.find(key);
    return it != given.end() ? it->second : root;
  };
  if (spec.kind == JobKind::kBatch) {
    if (given.count("service")) return Invalid(at("service"), "only for kind: service");
    if (spec.restart == RestartPolicy::kAlways) {
      return Invalid(at("restart"),
                     "policy Always is for services (kind: service): a batch job that restarts "
                     "after it succeeds would never end; use OnFailure");
    }
    return absl::OkStatus();
  }
  for (const auto& [key, why] : kBatchOnlyFields) {
    if (given.count(std::string(key))) {
      return Invalid(at(std::string(key)), absl::StrCat("is for batch jobs, not kind: service (", why, ")"));
    }
  }
  if (given.count("restart")) {
    if (spec.restart != RestartPolicy::kAlways) {
      return Invalid(at("restart"),
                     "a service's replicas restart Always (with a back-off) until it is cancelled; "
                     "leave restart out or say policy: Always");
    }
    if (spec.max_retries > 0) return Invalid(at("restart"), "a service retries without end; leave max_retries out");
  }
  spec.restart = RestartPolicy::kAlways;
  if (spec.tasks.size() != 1) {
    return Invalid(at("tasks"), absl::StrCat("a service has one task group (its replicas are service.replicas), got ",
                                             spec.tasks.size()));
  }
  const TaskSpec& t = spec.tasks[0];
  if (t.replicas != 1 || (t.min_available != 0 && t.min_available != 1)) {
    return Invalid(at("tasks"),
                   "a service's task has one replica and no min_available; give the number of copies "
                   "as service.replicas, each placed and restarted on its own");
  }
  return absl::OkStatus();
}

}  // namespace icos::api::detail
