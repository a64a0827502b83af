#include "protocol/wire.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "absl/strings/str_cat.h"
#include "api/job_spec.h"
#include "common/utf8.h"

namespace icos::wire {

using nlohmann::json;

std::string TaskId(int64_t job, int32_t group, int32_t replica, int32_t attempt) {
  return absl::StrCat("j", job, "-g", group, "-r", replica, "-a", attempt);
}

bool ParseTaskId(const std::string& id, int64_t* job, int32_t* group, int32_t* replica, int32_t* attempt) {
  long long j = 0;
  int g = 0, r = 0, a = 0, consumed = 0;
  if (std::sscanf(id.c_str(), "j%lld-g%d-r%d-a%d%n", &j, &g, &r, &a, &consumed) != 4) return false;
  if (consumed != static_cast<int>(id.size()) || j <= 0 || g < 0 || r < 0 || a < 0) return false;
  *job = j;
  *group = g;
  *replica = r;
  *attempt = a;
  return true;
}

namespace {

// Runs `f` and turns a nlohmann exception into InvalidArgument naming `what`.
template <typename F>
auto Guard(const char* what, F&& f) -> absl::StatusOr<decltype(f())> {
  try {
    return f();
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad ", what, ": ", e.what()));
  } catch (const std::invalid_argument& e) {
    return absl::InvalidArgumentError(absl::StrCat("bad ", what, ": ", e.what()));
  }
}

}  // namespace

json NodeToJson(const core::Node& n) {
  json devices = json::array();
  for (const auto& d : n.devices) {
    devices.push_back({{"vendor", d.vendor},
                       {"model", d.model},
                       {"memory_mib", d.memory_mib},
                       {"compute_units", d.compute_units},
                       {"healthy", d.healthy},
                       {"drained", d.drained},
                       {"island", d.island},
                       {"numa_node", d.numa_node},
                       {"pcie_switch", d.pcie_switch},
                       {"shareable", d.shareable},
                       {"runtime_index", d.runtime_index}});
  }
  json numa = json::array();
  for (const auto& z : n.numa_nodes) numa.push_back({{"cpu_milli", z.cpu_milli}, {"memory_mib", z.memory_mib}});
  return {{"name", n.name},     {"labels", n.labels}, {"cpu_milli", n.cpu_milli},       {"memory_mib", n.memory_mib},
          {"devices", devices}, {"numa_nodes", numa}, {"network_path", n.network_path}, {"schedulable", n.schedulable}};
}

absl::StatusOr<core::Node> NodeFromJson(const json& j) {
  return Guard("node", [&] {
    core::Node n;
    n.name = j.at("name").get<std::string>();
    n.labels = j.value("labels", std::map<std::string, std::string>{});
    n.cpu_milli = j.at("cpu_milli").get<int64_t>();
    n.memory_mib = j.at("memory_mib").get<int64_t>();
    for (const auto& d : j.value("devices", json::array())) {
      core::Device dev;
      dev.vendor = d.at("vendor").get<std::string>();
      dev.model = d.value("model", "");
      dev.memory_mib = d.value("memory_mib", int64_t{0});
      dev.compute_units = d.value("compute_units", 0);
      dev.healthy = d.value("healthy", true);
      dev.drained = d.value("drained", false);
      dev.island = d.value("island", -1);
      dev.numa_node = d.value("numa_node", 0);
      dev.pcie_switch = d.value("pcie_switch", -1);
      dev.shareable = d.value("shareable", true);
      dev.runtime_index = d.value("runtime_index", -1);
      n.devices.push_back(dev);
    }
    for (const auto& z : j.value("numa_nodes", json::array())) {
      n.numa_nodes.push_back({z.value("cpu_milli", int64_t{0}), z.value("memory_mib", int64_t{0})});
    }
    n.network_path = j.value("network_path", std::vector<std::string>{});
    n.schedulable = j.value("schedulable", true);
    return n;
  });
}

json PlacementToJson(const core::TaskPlacement& p) {
  json devices = json::array();
  for (const auto& s : p.devices)
    devices.push_back({{"device", s.device}, {"percent", s.percent}, {"memory_mib", s.memory_mib}});
  return {{"group", p.group},          {"replica", p.replica},       {"node", p.node},
          {"cpu_milli", p.cpu_milli},  {"memory_mib", p.memory_mib}, {"devices", devices},
          {"numa_nodes", p.numa_nodes}};
}

absl::StatusOr<core::TaskPlacement> PlacementFromJson(const json& j) {
  return Guard("placement", [&] {
    core::TaskPlacement p;
    p.group = j.at("group").get<int32_t>();
    p.replica = j.at("replica").get<int32_t>();
    p.node = j.value("node", 0);
    p.cpu_milli = j.at("cpu_milli").get<int64_t>();
    p.memory_mib = j.at("memory_mib").get<int64_t>();
    for (const auto& d : j.value("devices", json::array())) {
      p.devices.push_back(
          {d.at("device").get<int32_t>(), d.at("percent").get<int32_t>(), d.at("memory_mib").get<int64_t>()});
    }
    p.numa_nodes = j.value("numa_nodes", std::vector<int32_t>{});
    return p;
  });
}

bool IsProbeKind(const std::string& kind) { return kind == "readiness" || kind == "liveness" || kind == "startup"; }

json AssignmentToJson(const Assignment& a) {
  json probes = json::array();
  for (const CommandProbe& p : a.command_probes) {
    probes.push_back({{"kind", p.kind},
                      {"argv", p.argv},
                      {"initial_delay_ms", p.initial_delay_ms},
                      {"period_ms", p.period_ms},
                      {"timeout_ms", p.timeout_ms}});
  }
  return {{"task_id", a.task_id},
          {"job_id", a.job_id},
          {"group", a.group},
          {"replica", a.replica},
          {"attempt", a.attempt},
          {"run", a.run},
          {"argv", a.argv},
          {"workdir", a.workdir},
          {"env", a.env},
          {"files", a.files},
          {"cpu_milli", a.cpu_milli},
          {"memory_mib", a.memory_mib},
          {"numa_nodes", a.numa_nodes},
          {"devices", a.devices},
          {"vendor", a.vendor},
          {"ports", a.ports},
          {"serve_port", a.serve_port},
          {"time_limit_s", a.time_limit_s},
          {"grace_ms", a.grace_ms},
          {"max_disconnect_ms", a.max_disconnect_ms},
          {"started", a.started},
          {"user", a.user},
          {"uid", a.uid},
          {"gid", a.gid},
          {"checkpoint_signal", a.checkpoint_signal},
          {"checkpoint_grace_ms", a.checkpoint_grace_ms},
          {"checkpoint_first", a.checkpoint_first},
          {"command_probes", probes}};
}

absl::StatusOr<Assignment> AssignmentFromJson(const json& j) {
  return Guard("assignment", [&] {
    Assignment a;
    a.task_id = j.at("task_id").get<std::string>();
    a.job_id = j.at("job_id").get<int64_t>();
    a.group = j.value("group", 0);
    a.replica = j.value("replica", 0);
    a.attempt = j.value("attempt", 0);
    a.run = j.value("run", true);
    a.argv = j.value("argv", std::vector<std::string>{});
    a.workdir = j.value("workdir", "");
    a.env = j.value("env", std::map<std::string, std::string>{});
    a.files = j.value("files", std::map<std::string, std::string>{});
    a.cpu_milli = j.value("cpu_milli", int64_t{0});
    a.memory_mib = j.value("memory_mib", int64_t{0});
    a.numa_nodes = j.value("numa_nodes", std::vector<int32_t>{});
    a.devices = j.value("devices", std::vector<int32_t>{});
    a.vendor = j.value("vendor", "");
    a.ports = j.value("ports", std::vector<int32_t>{});
    a.serve_port = j.value("serve_port", 0);
    a.time_limit_s = j.value("time_limit_s", int64_t{0});
    a.grace_ms = j.value("grace_ms", int64_t{10'000});
    a.max_disconnect_ms = j.value("max_disconnect_ms", int64_t{0});
    a.started = j.value("started", false);
    a.user = j.value("user", "");
    a.uid = j.value("uid", int64_t{-1});
    a.gid = j.value("gid", int64_t{-1});
    a.checkpoint_signal = j.value("checkpoint_signal", 0);
    a.checkpoint_grace_ms = j.value("checkpoint_grace_ms", int64_t{0});
    a.checkpoint_first = j.value("checkpoint_first", false);
    for (const json& p : j.value("command_probes", json::array())) {
      CommandProbe probe{.kind = p.at("kind").get<std::string>(),
                         .argv = p.at("argv").get<std::vector<std::string>>(),
                         .initial_delay_ms = p.value("initial_delay_ms", int64_t{0}),
                         .period_ms = p.value("period_ms", int64_t{5'000}),
                         .timeout_ms = p.value("timeout_ms", int64_t{1'000})};
      if (!IsProbeKind(probe.kind) || probe.argv.empty() || probe.period_ms <= 0 || probe.timeout_ms <= 0) {
        throw std::invalid_argument("a command probe needs a kind, a program, a period and a timeout");
      }
      a.command_probes.push_back(std::move(probe));
    }
    return a;
  });
}

json TaskStatusToJson(const TaskStatus& s) {
  json j = {{"task_id", s.task_id}, {"state", s.state},       {"exit_code", s.exit_code},
            {"reason", s.reason},   {"start_ms", s.start_ms}, {"end_ms", s.end_ms}};
  if (s.requeue) j["requeue"] = true;
  if (s.checkpoint_ms > 0) j["checkpoint_ms"] = s.checkpoint_ms;
  if (s.checkpoint_save_ms > 0) j["checkpoint_save_ms"] = s.checkpoint_save_ms;
  if (s.checkpoint_cut) j["checkpoint_cut"] = true;
  if (s.max_rss_kib > 0) j["max_rss_kib"] = s.max_rss_kib;
  if (!s.probes.empty()) {
    json probes = json::array();
    for (const ProbeOutcome& p : s.probes) {
      probes.push_back({{"kind", p.kind}, {"seq", p.seq}, {"passed", p.passed}, {"message", p.message}});
    }
    j["probes"] = std::move(probes);
  }
  return j;
}

json HeartbeatReplyToJson(const HeartbeatReply& r) {
  return {{"ok", true},
          {"acked", r.acked},
          {"version", r.version},
          {"heartbeat_ms", r.heartbeat_ms},
          {"lease_ms", r.lease_ms}};
}

absl::StatusOr<HeartbeatReply> HeartbeatReplyFromJson(const json& j) {
  return Guard("heartbeat reply", [&] {
    HeartbeatReply r;
    r.acked = j.value("acked", std::vector<std::string>{});
    r.version = j.value("version", uint64_t{0});
    r.heartbeat_ms = j.value("heartbeat_ms", int64_t{0});
    r.lease_ms = j.value("lease_ms", int64_t{0});
    return r;
  });
}

absl::StatusOr<TaskStatus> TaskStatusFromJson(const json& j) {
  return Guard("task status", [&] {
    TaskStatus s;
    s.task_id = j.at("task_id").get<std::string>();
    s.state = j.at("state").get<std::string>();
    s.exit_code = j.value("exit_code", 0);
    s.reason = j.value("reason", "");
    s.start_ms = j.value("start_ms", int64_t{0});
    s.end_ms = j.value("end_ms", int64_t{0});
    s.requeue = j.value("requeue", false);
    s.checkpoint_ms = j.value("checkpoint_ms", int64_t{0});
    s.checkpoint_save_ms = j.value("checkpoint_save_ms", int64_t{0});
    s.checkpoint_cut = j.value("checkpoint_cut", false);
    s.max_rss_kib = j.value("max_rss_kib", int64_t{0});
    const json probes = j.value("probes", json::array());
    if (probes.size() > 3 * kMaxProbeOutcomes) throw std::invalid_argument("too many probe outcomes");
    for (const json& p : probes) {
      ProbeOutcome o{.kind = p.at("kind").get<std::string>(),
                     .seq = p.at("seq").get<int64_t>(),
                     .passed = p.at("passed").get<bool>(),
                     .message = p.value("message", "")};
      if (!IsProbeKind(o.kind)) throw std::invalid_argument("unknown probe kind");
      o.message = std::string(Utf8Prefix(o.message, 1024));  // a reason, quoted in JSON answers
      s.probes.push_back(std::move(o));
    }
    return s;
  });
}

json DeviceUsageToJson(const DeviceUsage& u) {
  return {{"utilization_pct", u.utilization_pct}, {"memory_used_mib", u.memory_used_mib}};
}

absl::StatusOr<DeviceUsage> DeviceUsageFromJson(const json& j) {
  auto u = Guard("device usage", [&] {
    DeviceUsage d;
    d.utilization_pct = j.value("utilization_pct", -1);
    d.memory_used_mib = j.value("memory_used_mib", int64_t{-1});
    return d;
  });
  if (!u.ok()) return u;
  if (u->utilization_pct < -1 || u->utilization_pct > 100 || u->memory_used_mib < -1) {
    return absl::InvalidArgumentError(
        absl::StrCat("device usage: utilization_pct must be 0..100 (-1: unknown) and "
                     "memory_used_mib >= 0 (-1: unknown); got ",
                     u->utilization_pct, " and ", u->memory_used_mib));
  }
  return u;
}

namespace {
// Users speak whole devices and cores; the core counts milli-units, memory in MiB.
int64_t ToMilli(const std::string& key, double v) {
  return key == "memory" ? static_cast<int64_t>(v) : static_cast<int64_t>(v * 1000.0 + 0.5);
}
double FromMilli(const std::string& key, int64_t v) {
  return key == "memory" ? static_cast<double>(v) : static_cast<double>(v) / 1000.0;
}
}  // namespace

json AmountsToJson(const core::ResourceAmounts& amounts) {
  json out = json::object();
  for (const auto& [k, v] : amounts) out[k] = FromMilli(k, v);
  return out;
}

json QueueToJson(const core::Queue& q) {
  const json g = AmountsToJson(q.guaranteed), l = AmountsToJson(q.limit);
  json out = {
      {"name", q.name}, {"parent", q.parent},       {"weight", q.weight},         {"guaranteed", g},
      {"limit", l},     {"lend_idle", q.lend_idle}, {"may_borrow", q.may_borrow}, {"max_priority", q.max_priority}};
  if (q.min_run_ms > 0) out["min_run_s"] = static_cast<double>(q.min_run_ms) / 1000.0;
  if (q.usage_half_life_s > 0) out["usage_half_life_s"] = q.usage_half_life_s;
  if (!q.notify_url.empty()) out["notify"] = {{"url", q.notify_url}, {"on", api::NotifyEventNames(q.notify_on)}};
  if (!q.priority_classes.empty()) {
    json classes = json::object();
    for (const auto& [name, c] : q.priority_classes) {
      classes[name] = {{"priority", c.priority}, {"preempts", c.preempts}};
    }
    out["priority_classes"] = std::move(classes);
  }
  if (!q.default_priority_class.empty()) out["default_priority_class"] = q.default_priority_class;
  return out;
}

namespace {

// A queue's "notify": a URL, or {"url": URL, "on": [events]} (job_spec.h's
// `notify:`); sets q.notify_url and q.notify_on. The URL itself is checked
// where every queue change goes through (Controller::PutQueue).
absl::Status QueueNotifyFromJson(const json& j, core::Queue& q) {
  const json url = j.is_object() ? j.value("url", json()) : j;
  if (!url.is_string())
    return absl::InvalidArgumentError("queue notify: expected a URL or {\"url\": URL, \"on\": [...]}");
  q.notify_url = url.get<std::string>();
  q.notify_on = api::kNotifyAll;
  if (!j.is_object() || !j.contains("on")) return absl::OkStatus();
  const json& on = j["on"];
  if (!on.is_array() || on.empty())
    return absl::InvalidArgumentError("queue notify.on: a list of start, end, fail, preempt");
  q.notify_on = 0;
  for (const json& name : on) {
    const uint32_t bit = name.is_string() ? api::NotifyEventByName(name.get<std::string>()) : 0;
    if (bit == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("queue notify.on: ", name.dump(), " is not an event; use start, end, fail or preempt"));
    }
    q.notify_on |= bit;
  }
  return absl::OkStatus();
}

// A queue's "priority_classes": {NAME: {"priority": N, "preempts": bool}}.
absl::Status PriorityClassesFromJson(const json& j, core::Queue& q) {
  constexpr int32_t kMax = 1'000'000;  // api::SpecLimits::max_priority
  if (!j.is_object()) {
    return absl::InvalidArgumentError(R"(queue priority_classes: expected {"NAME": {"priority": N}, ...})");
  }
  if (j.size() > 64) return absl::InvalidArgumentError("queue priority_classes: at most 64");
  for (const auto& [name, c] : j.items()) {
    if (!api::IsValidName(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("queue priority class '", name, "' is not a valid name (lowercase letters, digits and '-')"));
    }
    if (!c.is_object() || !c.contains("priority") || !c["priority"].is_number_integer() ||
        c["priority"].get<int64_t>() < -kMax || c["priority"].get<int64_t>() > kMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("queue priority class '", name, "' needs a priority from ", -kMax, " to ", kMax));
    }
    for (const auto& [k, v] : c.items()) {
      if (k != "priority" && k != "preempts") {
        return absl::InvalidArgumentError(
            absl::StrCat("queue priority class '", name, "': field '", k, "' is unknown; known: priority, preempts"));
      }
    }
    if (c.contains("preempts") && !c["preempts"].is_boolean()) {
      return absl::InvalidArgumentError(absl::StrCat("queue priority class '", name, "': preempts is true or false"));
    }
    q.priority_classes[name] = core::PriorityClass{.priority = static_cast<int32_t>(c["priority"].get<int64_t>()),
                                                   .preempts = c.value("preempts", true)};
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<core::Queue> QueueFromJson(const json& j) {
  static const char* kKnown[] = {"name",
                                 "parent",
                                 "weight",
                                 "guaranteed",
                                 "limit",
                                 "lend_idle",
                                 "may_borrow",
                                 "max_priority",
                                 "min_run_s",
                                 "usage_half_life_s",
                                 "notify",
                                 "priority_classes",
                                 "default_priority_class"};
  if (!j.is_object()) return absl::InvalidArgumentError("a queue must be a JSON object");
  for (const auto& [k, v] : j.items()) {
    bool known = false;
    for (const char* n : kKnown) known |= k == n;
    if (!known) {
      return absl::InvalidArgumentError(absl::StrCat(
          "queue field '", k,
          "' is unknown; known: name, parent, weight, guaranteed, limit, lend_idle, may_borrow, max_priority, "
          "min_run_s, usage_half_life_s, notify, priority_classes, default_priority_class"));
    }
  }
  if (j.contains("min_run_s") &&
      !(j["min_run_s"].is_number() && j["min_run_s"].get<double>() >= 0 && j["min_run_s"].get<double>() < 1e9)) {
    return absl::InvalidArgumentError("queue min_run_s must be a number of seconds, 0 or more");
  }
  auto parsed = Guard("queue", [&] {
    core::Queue q;
    q.name = j.at("name").get<std::string>();
    q.parent = j.value("parent", "");
    q.weight = j.value("weight", 1.0);
    // Named copies: iterating items() of a temporary would dangle.
    const json guaranteed = j.value("guaranteed", json::object());
    const json limit = j.value("limit", json::object());
    for (const auto& [k, v] : guaranteed.items()) q.guaranteed[k] = ToMilli(k, v.get<double>());
    for (const auto& [k, v] : limit.items()) q.limit[k] = ToMilli(k, v.get<double>());
    q.lend_idle = j.value("lend_idle", true);
    q.may_borrow = j.value("may_borrow", true);
    q.max_priority = j.value("max_priority", 0);
    const double min_run_s = j.value("min_run_s", 0.0);
    q.min_run_ms = min_run_s > 0 && min_run_s < 1e9 ? static_cast<int64_t>(min_run_s * 1000) : 0;
    q.usage_half_life_s = j.value("usage_half_life_s", int64_t{0});
    return q;
  });
  if (!parsed.ok()) return parsed.status();
  if (parsed->name.empty()) return absl::InvalidArgumentError("a queue needs a name");
  if (!(parsed->weight > 0)) return absl::InvalidArgumentError("queue weight must be positive");
  if (parsed->usage_half_life_s < 0 || parsed->usage_half_life_s > 365LL * 86'400) {
    return absl::InvalidArgumentError("queue usage_half_life_s must be 0 (off) to a year of seconds");
  }
  for (const auto* m : {&parsed->guaranteed, &parsed->limit}) {
    for (const auto& [k, v] : *m) {
      if (v < 0) return absl::InvalidArgumentError(absl::StrCat("queue amount of '", k, "' must not be negative"));
    }
  }
  if (j.contains("notify") && !j["notify"].is_null()) {
    if (absl::Status s = QueueNotifyFromJson(j["notify"], *parsed); !s.ok()) return s;
  }
  if (j.contains("priority_classes")) {
    if (absl::Status s = PriorityClassesFromJson(j["priority_classes"], *parsed); !s.ok()) return s;
  }
  if (j.contains("default_priority_class")) {
    if (!j["default_priority_class"].is_string()) {
      return absl::InvalidArgumentError("queue default_priority_class: the name of one of its priority_classes");
    }
    parsed->default_priority_class = j["default_priority_class"].get<std::string>();
    if (!parsed->priority_classes.contains(parsed->default_priority_class)) {
      return absl::InvalidArgumentError(absl::StrCat("queue default_priority_class '", parsed->default_priority_class,
                                                     "' is none of its priority_classes"));
    }
  }
  return parsed;
}

}  // namespace icos::wire
