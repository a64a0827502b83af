#include "api/job_spec.h"

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <exception>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "api/quantity.h"
#include "api/spec_parser.h"
#include "api/spec_text.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/eventhandler.h"
#include "yaml-cpp/yaml.h"

namespace icos::api {
namespace {

using Json = nlohmann::ordered_json;
using detail::AllDigits;
using detail::CheckSingleDocument;
using detail::Child;
using detail::Describe;
using detail::Entry;
using detail::Field;
using detail::FirstInvalidUtf8;
using detail::FormatCpu;
using detail::FormatDuration;
using detail::FormatMemory;
using detail::Invalid;
using detail::IsDnsLabel;
using detail::IsEnvName;
using detail::IsLabelKey;
using detail::IsLabelValue;
using detail::IsOneOf;
using detail::IsVendorName;
using detail::kMaxShown;
using detail::kMi;
using detail::LineExceedingNesting;
using detail::LineOf;
using detail::NameOf;
using detail::NamesOf;
using detail::ParseMemory;
using detail::Parser;
using detail::Shown;
using detail::UnknownField;

// Real specs nest five levels deep (job > tasks > task > devices > wish);
// anything far deeper is an attack on the recursive YAML parser.
constexpr int kMaxNesting = 64;
constexpr int32_t kMaxRetries = 100;
using detail::kMaxNameLength;
constexpr size_t kMaxModelLength = 128;
constexpr double kMaxThroughput = 1e12;

// ---------------------------------------------------------------------------
// Names of enum values.

constexpr std::pair<Framework, absl::string_view> kFrameworks[] = {
    {Framework::kNone, "none"},
    {Framework::kPyTorch, "pytorch"},
    {Framework::kMpi, "mpi"},
    {Framework::kDeepSpeed, "deepspeed"},
    {Framework::kMindSpore, "mindspore"},
    {Framework::kPaddle, "paddle"},
    {Framework::kTensorFlow, "tensorflow"},
};

constexpr std::pair<RestartPolicy, absl::string_view> kRestartPolicies[] = {
    {RestartPolicy::kNever, "Never"},
    {RestartPolicy::kOnFailure, "OnFailure"},
    {RestartPolicy::kAlways, "Always"},
};

constexpr std::pair<JobKind, absl::string_view> kJobKinds[] = {
    {JobKind::kBatch, "batch"},
    {JobKind::kService, "service"},
};

constexpr std::pair<core::Affinity, absl::string_view> kAffinities[] = {
    {core::Affinity::kNone, "none"},          {core::Affinity::kSameIsland, "same-island"},
    {core::Affinity::kSameNode, "same-node"}, {core::Affinity::kSameRack, "same-rack"},
    {core::Affinity::kSpread, "spread"},
};

// Kubernetes' DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
}  // namespace

bool IsValidName(absl::string_view s) { return detail::IsDnsLabel(s); }

std::string ToJobName(absl::string_view text) {
  std::string out;
  for (char c : text) {
    const char l = absl::ascii_tolower(static_cast<unsigned char>(c));
    if (absl::ascii_isalnum(static_cast<unsigned char>(l))) {
      out.push_back(l);
    } else if (!out.empty() && out.back() != '-') {
      out.push_back('-');
    }
  }
  if (out.size() > kMaxNameLength) out.resize(kMaxNameLength);
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

namespace {

constexpr absl::string_view kNameRule =
    "use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit";

// A usable job name from a command: "/usr/bin/Train_GPT.py" gives "train-gpt-py".
std::string NameFromCommand(const std::vector<std::string>& command) {
  if (command.empty()) return "job";
  absl::string_view base = command[0];
  if (const size_t slash = base.rfind('/'); slash != absl::string_view::npos) base = base.substr(slash + 1);
  std::string name;
  for (char c : base) {
    const auto u = static_cast<unsigned char>(c);
    const char lower = absl::ascii_tolower(u);
    const bool ok = absl::ascii_islower(static_cast<unsigned char>(lower)) || absl::ascii_isdigit(u);
    if (ok) {
      name.push_back(lower);
    } else if (!name.empty() && name.back() != '-') {
      name.push_back('-');
    }
    if (name.size() >= kMaxNameLength) break;
  }
  while (!name.empty() && name.back() == '-') name.pop_back();
  return name.empty() ? "job" : name;
}

constexpr absl::string_view kJobFields[] = {
    "name",        "queue", "priority", "framework",      "restart",      "time_limit", "runtime_estimate",
    "preemptible", "env",   "tasks",    "max_disconnect", "dependencies", "array",      "checkpoint",
    "notify",      "kind",  "service",  "priority_class", "preempts"};
constexpr absl::string_view kCheckpointFields[] = {"signal", "grace", "interval"};
constexpr std::pair<int32_t, absl::string_view> kCheckpointSignals[] = {
    {SIGUSR1, "SIGUSR1"}, {SIGUSR2, "SIGUSR2"}, {SIGINT, "SIGINT"}, {SIGHUP, "SIGHUP"}, {SIGTERM, "SIGTERM"}};
// A checkpoint gets at least this long and at most this long before SIGTERM.
constexpr int64_t kMinCheckpointGraceS = 1;
constexpr int64_t kMaxCheckpointGraceS = 3600;
constexpr absl::string_view kNotifyFields[] = {"url", "on", "array_tasks"};
constexpr std::pair<uint32_t, absl::string_view> kNotifyEvents[] = {
    {kNotifyStart, "start"}, {kNotifyEnd, "end"}, {kNotifyFail, "fail"}, {kNotifyPreempt, "preempt"}};
constexpr absl::string_view kDependencyFields[] = {"after_ok", "after_any", "after_not_ok", "if_unmet"};
constexpr absl::string_view kRestartFields[] = {"policy", "max_retries"};
constexpr absl::string_view kTaskFields[] = {"name", "replicas",  "min_available", "command",  "workdir",
                                             "env",  "resources", "devices",       "affinity", "node_selector"};
constexpr absl::string_view kResourceFields[] = {"cpu", "memory", "devices", "device_share", "device_memory"};
constexpr absl::string_view kDeviceFields[] = {"vendor", "model", "throughput"};

}  // namespace

namespace detail {

absl::Status Parser::Charge(const Field& f, size_t bytes) {
  budget_ -= static_cast<int64_t>(bytes) + 1;
  if (budget_ >= 0) return absl::OkStatus();
  return Invalid(f, absl::StrCat("the spec expands to more than ", kExpansionFactor,
                                 " times max_bytes through YAML aliases; write it out plainly"));
}

absl::StatusOr<std::vector<Entry>> Parser::Entries(const Field& f, absl::string_view expected) {
  if (!f.node.IsMap()) return Invalid(f, absl::StrCat("expected ", expected, ", got ", Describe(f.node)));
  std::vector<Entry> entries;
  std::set<std::string, std::less<>> seen;
  // Each entry is a value: yaml-cpp's `it->first` refers into a temporary.
  for (const auto& entry : f.node) {
    const YAML::Node& key = entry.first;
    if (!key.IsScalar()) {
      return Invalid(f.path, key.Mark(), absl::StrCat("field names must be plain text, got ", Describe(key)));
    }
    Field field{Child(f.path, key.Scalar()), key.Mark(), entry.second};
    if (!seen.insert(key.Scalar()).second) return Invalid(field, "duplicate field");
    if (absl::Status s = Charge(field, key.Scalar().size()); !s.ok()) return s;
    entries.push_back({key.Scalar(), std::move(field)});
  }
  return entries;
}

absl::StatusOr<std::string> Parser::Text(const Field& f) {
  if (!f.node.IsScalar()) return Invalid(f, absl::StrCat("expected text, got ", Describe(f.node)));
  const std::string& s = f.node.Scalar();
  if (s.find('\0') != std::string::npos) return Invalid(f, "text must not contain NUL characters");
  if (FirstInvalidUtf8(s) != std::string::npos) return Invalid(f, "text is not valid UTF-8");
  if (absl::Status st = Charge(f, s.size()); !st.ok()) return st;
  return s;
}

absl::StatusOr<std::string> Parser::Name(const Field& f) {
  absl::StatusOr<std::string> s = Text(f);
  if (!s.ok()) return s.status();
  if (!IsDnsLabel(*s)) return Invalid(f, absl::StrCat("'", Shown(*s), "' is not a valid name; ", kNameRule));
  return s;
}

absl::StatusOr<int64_t> Parser::Integer(const Field& f, int64_t lo, int64_t hi) {
  if (!f.node.IsScalar()) return Invalid(f, absl::StrCat("expected a whole number, got ", Describe(f.node)));
  const std::string& s = f.node.Scalar();
  const std::string range = absl::StrCat("use ", lo, " to ", hi);
  int64_t v;
  if (!absl::SimpleAtoi(s, &v)) {
    absl::string_view digits = absl::StripAsciiWhitespace(s);
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
    if (!digits.empty() && AllDigits(digits)) {
      return Invalid(f, absl::StrCat("'", Shown(s), "' is out of range; ", range));
    }
    return Invalid(f, absl::StrCat("'", Shown(s), "' is not a whole number"));
  }
  if (v < lo || v > hi) return Invalid(f, absl::StrCat(v, " is out of range; ", range));
  return v;
}

absl::StatusOr<bool> Parser::Bool(const Field& f) {
  if (f.node.IsScalar()) {
    const std::string lower = absl::AsciiStrToLower(f.node.Scalar());
    if (lower == "true") return true;
    if (lower == "false") return false;
  }
  return Invalid(f, absl::StrCat("expected true or false, got ", Describe(f.node)));
}

absl::StatusOr<int64_t> Parser::Duration(const Field& f) {
  if (!f.node.IsScalar()) return Invalid(f, absl::StrCat("expected a duration, got ", Describe(f.node)));
  absl::StatusOr<int64_t> s = ParseDurationS(f.node.Scalar());
  if (!s.ok()) return Invalid(f, s.status().message());
  if (*s > kMaxDurationS) {
    return Invalid(
        f, absl::StrCat("'", Shown(f.node.Scalar()), "' is above the limit of ", FormatDuration(kMaxDurationS)));
  }
  return s;
}

// Memory for a task or a device share: more than zero, at most the limit, and
// not a bare small number (which would be bytes, and surely meant as MiB).
absl::StatusOr<int64_t> Parser::Memory(const Field& f) {
  if (!f.node.IsScalar()) return Invalid(f, absl::StrCat("expected a memory quantity, got ", Describe(f.node)));
  const std::string& text = f.node.Scalar();
  bool under_one_mib = false;
  absl::StatusOr<int64_t> mib = ParseMemory(text, &under_one_mib);
  if (!mib.ok()) return Invalid(f, mib.status().message());
  if (*mib == 0) return Invalid(f, "must be more than zero; use e.g. 512Mi or 2Gi");
  if (under_one_mib) {
    const std::string shown = Shown(absl::StripAsciiWhitespace(text));
    return Invalid(f,
                   absl::StrCat("'", shown, "' bytes is less than 1Mi; did you mean ", shown, "Mi or ", shown, "Gi?"));
  }
  if (*mib > limits_.max_memory_mib) {
    return Invalid(f, absl::StrCat("'", Shown(text), "' is above the limit of ", FormatMemory(limits_.max_memory_mib)));
  }
  return mib;
}

absl::StatusOr<JobSpec> Parser::Job(const Field& root) {
  if (root.node.IsNull()) return Invalid(root, "the spec is empty; it needs at least `tasks`");
  absl::StatusOr<std::vector<Entry>> entries = Entries(root, "a mapping of job fields (name, tasks, ...)");
  if (!entries.ok()) return entries.status();
  JobSpec spec;
  bool has_name = false;
  bool has_tasks = false;
  std::optional<Field> time_limit_field;
  std::vector<Field> task_fields;
  std::map<std::string, Field> given;  // top-level fields given, for the checks that span them
  for (const Entry& e : *entries) {
    const Field& f = e.field;
    if (!IsOneOf(e.key, kJobFields)) return UnknownField(e, kJobFields);
    if (f.node.IsNull()) continue;  // null means "not given"
    given.emplace(e.key, f);
    absl::Status status;
    if (e.key == "kind") {
      absl::StatusOr<JobKind> v = Enum(f, kJobKinds, "a kind of job");
      status = v.status();
      if (v.ok()) spec.kind = *v;
    } else if (e.key == "service") {
      status = Service(f, spec.service);
    } else if (e.key == "name") {
      absl::StatusOr<std::string> v = Name(f);
      status = v.status();
      if (v.ok()) {
        spec.name = *v;
        has_name = true;
      }
    } else if (e.key == "queue") {
      absl::StatusOr<std::string> v = Name(f);
      status = v.status();
      if (v.ok()) spec.queue = *v;
    } else if (e.key == "priority") {
      absl::StatusOr<int64_t> v = Integer(f, -limits_.max_priority, limits_.max_priority);
      status = v.status();
      if (v.ok()) spec.priority = static_cast<int32_t>(*v);
    } else if (e.key == "framework") {
      absl::StatusOr<Framework> v = Enum(f, kFrameworks, "a framework");
      status = v.status();
      if (v.ok()) spec.framework = *v;
    } else if (e.key == "restart") {
      status = Restart(f, spec);
    } else if (e.key == "dependencies") {
      status = Dependencies(f, spec);
    } else if (e.key == "checkpoint") {
      status = Checkpoint(f, spec);
    } else if (e.key == "notify") {
      status = Notify(f, spec);
    } else if (e.key == "array") {
      absl::StatusOr<std::string> v = Text(f);
      status = v.status();
      if (v.ok()) {
        absl::StatusOr<ArrayIndices> a = ParseArrayIndices(*v, limits_.max_array_size, limits_.max_array_text);
        status = a.ok() ? absl::OkStatus() : Invalid(f, a.status().message());
        if (a.ok()) SetArray(*a, spec);
      }
    } else if (e.key == "time_limit") {
      absl::StatusOr<int64_t> v = Duration(f);
      status = v.status();
      if (v.ok()) spec.time_limit_s = *v;
      time_limit_field = f;
    } else if (e.key == "runtime_estimate") {
      absl::StatusOr<int64_t> v = Duration(f);
      status = v.status();
      if (v.ok()) spec.runtime_estimate_s = *v;
    } else if (e.key == "max_disconnect") {
      absl::StatusOr<int64_t> v = Duration(f);
      status = v.status();
      // Below a few heartbeats a healthy node would lose its tasks to a
      // single slow beat.
      if (v.ok() && *v < kMinMaxDisconnectS) {
        status = Invalid(f, absl::StrCat("must be at least ", FormatDuration(kMinMaxDisconnectS),
                                         " (or left out for the cluster's node lease)"));
      }
      if (status.ok()) spec.max_disconnect_s = *v;
    } else if (e.key == "priority_class") {
      absl::StatusOr<std::string> v = Name(f);
      status = v.status();
      if (v.ok()) spec.priority_class = *v;
    } else if (e.key == "preempts") {
      absl::StatusOr<bool> v = Bool(f);
      status = v.status();
      if (v.ok()) spec.preempts = *v;
    } else if (e.key == "preemptible") {
      absl::StatusOr<bool> v = Bool(f);
      status = v.status();
      if (v.ok()) spec.preemptible = *v;
    } else if (e.key == "env") {
      absl::StatusOr<std::map<std::string, std::string>> v = Env(f);
      status = v.status();
      if (v.ok()) spec.env = *std::move(v);
    } else if (e.key == "tasks") {
      has_tasks = true;
      if (!f.node.IsSequence()) {
        return Invalid(f, absl::StrCat("expected a list of tasks, got ", Describe(f.node)));
      }
      if (f.node.size() == 0) return Invalid(f, "at least one task is required");
      if (f.node.size() > static_cast<size_t>(limits_.max_tasks)) {
        return Invalid(f, absl::StrCat(f.node.size(), " tasks is above the limit of ", limits_.max_tasks));
      }
      int i = 0;
      for (const YAML::Node& item : f.node) {
        task_fields.push_back({absl::StrCat(f.path, "[", i++, "]"), item.Mark(), item});
      }
    }
    if (!status.ok()) return status;
  }
  if (!has_tasks) {
    return Invalid("tasks", root.mark,
                   "required: list at least one task, e.g. tasks: [{command: [\"python3\", \"train.py\"]}]");
  }
  std::vector<std::string> task_paths;
  for (size_t i = 0; i < task_fields.size(); ++i) {
    absl::StatusOr<TaskSpec> task = Task(task_fields[i], static_cast<int>(i));
    if (!task.ok()) return task.status();
    for (size_t j = 0; j < spec.tasks.size(); ++j) {
      if (spec.tasks[j].name == task->name) {
        return Invalid(Child(task_fields[i].path, "name"), task_fields[i].mark,
                       absl::StrCat("'", task->name, "' is already the name of ", task_fields[j].path,
                                    "; task names must be unique"));
      }
    }
    spec.tasks.push_back(*std::move(task));
  }
  if (!has_name) spec.name = NameFromCommand(spec.tasks[0].command);
  if (absl::Status s = CheckKind(spec, given, root); !s.ok()) return s;
  if (spec.time_limit_s > 0 && spec.runtime_estimate_s > spec.time_limit_s) {
    return Invalid(*time_limit_field,
                   absl::StrCat(FormatDuration(spec.time_limit_s), " is shorter than runtime_estimate (",
                                FormatDuration(spec.runtime_estimate_s),
                                "); the job would be stopped before it is expected to finish"));
  }
  return spec;
}

absl::Status Parser::Restart(const Field& f, JobSpec& spec) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {policy: OnFailure, max_retries: 2}");
  if (!entries.ok()) return entries.status();
  std::optional<Field> retries_field;
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kRestartFields)) return UnknownField(e, kRestartFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "policy") {
      absl::StatusOr<RestartPolicy> v = Enum(e.field, kRestartPolicies, "a restart policy");
      if (!v.ok()) return v.status();
      spec.restart = *v;
    } else {
      absl::StatusOr<int64_t> v = Integer(e.field, 0, kMaxRetries);
      if (!v.ok()) return v.status();
      spec.max_retries = static_cast<int32_t>(*v);
      retries_field = e.field;
    }
  }
  if (spec.max_retries > 0 && spec.restart == RestartPolicy::kNever) {
    return Invalid(*retries_field, "needs policy: OnFailure (with policy Never a failed task is not retried)");
  }
  return absl::OkStatus();
}

absl::Status Parser::Checkpoint(const Field& f, JobSpec& spec) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {signal: SIGUSR1, grace: 2m} (or {})");
  if (!entries.ok()) return entries.status();
  CheckpointSpec& c = spec.checkpoint;
  c.enabled = true;
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kCheckpointFields)) return UnknownField(e, kCheckpointFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "signal") {
      absl::StatusOr<int32_t> v = Enum(e.field, kCheckpointSignals, "a checkpoint signal");
      if (!v.ok()) return v.status();
      c.signal = *v;
      continue;
    }
    absl::StatusOr<int64_t> v = Duration(e.field);
    if (!v.ok()) return v.status();
    if (e.key == "interval") {
      c.interval_s = *v;
    } else if (*v < kMinCheckpointGraceS || *v > kMaxCheckpointGraceS) {
      return Invalid(e.field, absl::StrCat("must be between ", FormatDuration(kMinCheckpointGraceS), " and ",
                                           FormatDuration(kMaxCheckpointGraceS)));
    } else {
      c.grace_s = *v;
    }
  }
  return absl::OkStatus();
}

absl::Status Parser::Notify(const Field& f, JobSpec& spec) {
  NotifySpec& n = spec.notify;
  auto url = [&](const Field& field) -> absl::Status {
    absl::StatusOr<std::string> text = Text(field);
    if (!text.ok()) return text.status();
    if (absl::StatusOr<WebhookUrl> parsed = ParseWebhookUrl(*text); !parsed.ok()) {
      return Invalid(field, parsed.status().message());
    }
    n.url = *std::move(text);
    return absl::OkStatus();
  };
  if (f.node.IsScalar()) return url(f);
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a URL, or a mapping like {url: URL, on: [end, fail]}");
  if (!entries.ok()) return entries.status();
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kNotifyFields)) return UnknownField(e, kNotifyFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "url") {
      if (absl::Status s = url(e.field); !s.ok()) return s;
      continue;
    }
    if (e.key == "array_tasks") {
      absl::StatusOr<bool> v = Bool(e.field);
      if (!v.ok()) return v.status();
      n.array_tasks = *v;
      continue;
    }
    if (!e.field.node.IsSequence() || e.field.node.size() == 0) {
      return Invalid(e.field, "expected a list of events: start, end, fail, preempt");
    }
    n.on = 0;
    int i = 0;
    for (const YAML::Node& item : e.field.node) {
      Field event{absl::StrCat(e.field.path, "[", i++, "]"), item.Mark().is_null() ? e.field.mark : item.Mark(), item};
      absl::StatusOr<uint32_t> v = Enum(event, kNotifyEvents, "an event");
      if (!v.ok()) return v.status();
      n.on |= *v;
    }
  }
  if (n.url.empty()) return Invalid(f, "needs a url");
  return absl::OkStatus();
}

absl::Status Parser::Dependencies(const Field& f, JobSpec& spec) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {after_ok: [12, 13]}");
  if (!entries.ok()) return entries.status();
  api::Dependencies& d = spec.dependencies;
  size_t count = 0;
  for (const Entry& e : *entries) {
    if (!IsOneOf(e.key, kDependencyFields)) return UnknownField(e, kDependencyFields);
    if (e.field.node.IsNull()) continue;
    if (e.key == "if_unmet") {
      absl::StatusOr<std::string> v = Text(e.field);
      if (!v.ok()) return v.status();
      if (*v != "cancel" && *v != "wait") {
        return Invalid(e.field, absl::StrCat("'", Shown(*v), "' is not cancel or wait"));
      }
      d.cancel_if_unmet = *v == "cancel";
      continue;
    }
    std::vector<int64_t>& ids = e.key == "after_ok" ? d.after_ok : e.key == "after_any" ? d.after_any : d.after_not_ok;
    // One id or a list of them.
    std::vector<Field> items;
    if (e.field.node.IsSequence()) {
      int i = 0;
      for (const YAML::Node& item : e.field.node) {
        items.push_back({absl::StrCat(e.field.path, "[", i++, "]"), item.Mark(), item});
      }
    } else {
      items.push_back(e.field);
    }
    for (const Field& item : items) {
      if (++count > limits_.max_dependencies) {
        return Invalid(item, absl::StrCat("more than ", limits_.max_dependencies, " dependencies"));
      }
      absl::StatusOr<int64_t> id = Integer(item, 1, std::numeric_limits<int64_t>::max());
      if (!id.ok()) return id.status();
      if (std::find(ids.begin(), ids.end(), *id) == ids.end()) ids.push_back(*id);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<TaskSpec> Parser::Task(const Field& f, int index) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a task: a mapping with at least `command`");
  if (!entries.ok()) return entries.status();
  TaskSpec task;
  bool has_command = false;
  std::optional<Field> min_available_field;
  std::optional<Field> wishes_field;
  for (const Entry& e : *entries) {
    const Field& v = e.field;
    if (!IsOneOf(e.key, kTaskFields)) return UnknownField(e, kTaskFields);
    if (v.node.IsNull()) continue;
    absl::Status status;
    if (e.key == "name") {
      absl::StatusOr<std::string> s = Name(v);
      status = s.status();
      if (s.ok()) task.name = *s;
    } else if (e.key == "replicas") {
      absl::StatusOr<int64_t> n = Integer(v, 1, limits_.max_replicas);
      status = n.status();
      if (n.ok()) task.replicas = static_cast<int32_t>(*n);
    } else if (e.key == "min_available") {
      absl::StatusOr<int64_t> n = Integer(v, 0, limits_.max_replicas);
      status = n.status();
      if (n.ok()) task.min_available = static_cast<int32_t>(*n);
      min_available_field = v;
    } else if (e.key == "command") {
      absl::StatusOr<std::vector<std::string>> c = Command(v);
      status = c.status();
      if (c.ok()) task.command = *std::move(c);
      has_command = true;
    } else if (e.key == "workdir") {
      absl::StatusOr<std::string> s = Text(v);
      status = s.status();
      if (s.ok()) task.workdir = *s;
    } else if (e.key == "env") {
      absl::StatusOr<std::map<std::string, std::string>> m = Env(v);
      status = m.status();
      if (m.ok()) task.env = *std::move(m);
    } else if (e.key == "resources") {
      status = Resources(v, task);
    } else if (e.key == "devices") {
      absl::StatusOr<std::vector<DeviceWish>> w = DeviceWishes(v);
      status = w.status();
      if (w.ok()) task.device_wishes = *std::move(w);
      wishes_field = v;
    } else if (e.key == "affinity") {
      absl::StatusOr<core::Affinity> a = Enum(v, kAffinities, "an affinity");
      status = a.status();
      if (a.ok()) task.affinity = *a;
    } else if (e.key == "node_selector") {
      absl::StatusOr<std::map<std::string, std::string>> m = NodeSelector(v);
      status = m.status();
      if (m.ok()) task.node_selector = *std::move(m);
    }
    if (!status.ok()) return status;
  }
  if (!has_command) {
    return Invalid(Child(f.path, "command"), f.mark,
                   "required: the program and its arguments as a list, e.g. [\"python3\", \"train.py\"]");
  }
  if (task.min_available > task.replicas) {
    return Invalid(*min_available_field,
                   absl::StrCat(task.min_available, " is more than replicas (", task.replicas, ")"));
  }
  const bool wants_devices = task.devices > 0 || task.device_percent > 0 || task.device_memory_mib > 0;
  if (!task.device_wishes.empty() && !wants_devices) {
    return Invalid(*wishes_field,
                   "device types are listed but the task asks for no device; set resources.devices or "
                   "resources.device_share");
  }
  if (task.name.empty()) task.name = absl::StrCat("task", index);
  return task;
}

absl::StatusOr<std::vector<std::string>> Parser::Command(const Field& f) {
  if (f.node.IsScalar()) {
    std::vector<std::string> words = absl::StrSplit(f.node.Scalar(), absl::ByAnyChar(" \t"), absl::SkipEmpty());
    std::string hint = Json(words).dump(-1, ' ', false, Json::error_handler_t::replace);
    if (hint.size() > 2 * kMaxShown) hint = "[\"python3\", \"train.py\"]";
    return Invalid(f, absl::StrCat("expected a list of arguments, got text; write it as a list: ", hint));
  }
  if (!f.node.IsSequence()) return Invalid(f, absl::StrCat("expected a list of arguments, got ", Describe(f.node)));
  if (f.node.size() == 0) return Invalid(f, "must not be empty; give at least the program to run");
  std::vector<std::string> argv;
  int i = 0;
  for (const YAML::Node& item : f.node) {
    Field arg{absl::StrCat(f.path, "[", i++, "]"), item.Mark().is_null() ? f.mark : item.Mark(), item};
    if (item.IsNull()) return Invalid(arg, "argument is empty; quote it (\"\") if an empty argument is meant");
    absl::StatusOr<std::string> s = Text(arg);
    if (!s.ok()) return s.status();
    if (argv.empty() && s->empty()) return Invalid(arg, "the program name must not be empty");
    argv.push_back(*std::move(s));
  }
  return argv;
}

absl::Status Parser::Resources(const Field& f, TaskSpec& task) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping like {cpu: 1, memory: 2Gi}");
  if (!entries.ok()) return entries.status();
  std::optional<Field> devices_field;
  std::optional<Field> share_field;
  for (const Entry& e : *entries) {
    const Field& v = e.field;
    if (!IsOneOf(e.key, kResourceFields)) return UnknownField(e, kResourceFields);
    if (v.node.IsNull()) continue;
    if (e.key == "cpu") {
      if (!v.node.IsScalar()) return Invalid(v, absl::StrCat("expected a CPU quantity, got ", Describe(v.node)));
      absl::StatusOr<int64_t> milli = ParseCpuMilli(v.node.Scalar());
      if (!milli.ok()) return Invalid(v, milli.status().message());
      if (*milli == 0) return Invalid(v, "must be more than zero; use e.g. 500m or 1");
      if (*milli > limits_.max_cpu_milli) {
        return Invalid(v, absl::StrCat("'", Shown(v.node.Scalar()), "' is above the limit of ",
                                       FormatCpu(limits_.max_cpu_milli), " CPUs"));
      }
      task.cpu_milli = *milli;
    } else if (e.key == "memory") {
      absl::StatusOr<int64_t> mib = Memory(v);
      if (!mib.ok()) return mib.status();
      task.memory_mib = *mib;
    } else if (e.key == "devices") {
      absl::StatusOr<int64_t> n = Integer(v, 0, limits_.max_devices);
      if (!n.ok()) return n.status();
      task.devices = static_cast<int32_t>(*n);
      devices_field = v;
    } else if (e.key == "device_share") {
      if (!v.node.IsScalar()) return Invalid(v, absl::StrCat("expected a percentage, got ", Describe(v.node)));
      absl::string_view text = absl::StripAsciiWhitespace(v.node.Scalar());
      if (absl::EndsWith(text, "%")) text.remove_suffix(1);
      const absl::string_view digits = absl::StartsWith(text, "-") ? text.substr(1) : text;
      if (digits.empty() || !AllDigits(digits)) {
        return Invalid(v, absl::StrCat("'", Shown(v.node.Scalar()),
                                       "' is not a share; use a whole percentage of one device, e.g. 50%"));
      }
      int64_t percent = 0;
      if (!absl::SimpleAtoi(text, &percent)) percent = -1;  // too many digits: out of range below
      if (percent < 1 || percent > 99) {
        return Invalid(v, absl::StrCat("'", Shown(v.node.Scalar()),
                                       "' is out of range; use 1% to 99% (whole devices: resources.devices)"));
      }
      task.device_percent = static_cast<int32_t>(percent);
      share_field = v;
    } else if (e.key == "device_memory") {
      absl::StatusOr<int64_t> mib = Memory(v);
      if (!mib.ok()) return mib.status();
      task.device_memory_mib = *mib;
      if (!share_field) share_field = v;
    }
  }
  if (task.devices > 0 && share_field) {
    return Invalid(*share_field,
                   "cannot be combined with devices; ask for whole devices or a share of one device, not both");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceWish>> Parser::DeviceWishes(const Field& f) {
  if (!f.node.IsSequence()) {
    return Invalid(f, absl::StrCat("expected a list of device types like [{vendor: nvidia}], got ", Describe(f.node)));
  }
  std::vector<DeviceWish> wishes;
  int i = 0;
  for (const YAML::Node& item : f.node) {
    const Field wish_field{absl::StrCat(f.path, "[", i++, "]"), item.Mark().is_null() ? f.mark : item.Mark(), item};
    absl::StatusOr<std::vector<Entry>> entries = Entries(wish_field, "a device type like {vendor: nvidia}");
    if (!entries.ok()) return entries.status();
    DeviceWish wish;
    bool has_vendor = false;
    for (const Entry& e : *entries) {
      const Field& v = e.field;
      if (!IsOneOf(e.key, kDeviceFields)) return UnknownField(e, kDeviceFields);
      if (v.node.IsNull()) continue;
      if (e.key == "vendor") {
        absl::StatusOr<std::string> s = Text(v);
        if (!s.ok()) return s.status();
        const std::string vendor = absl::AsciiStrToLower(*s);
        if (!IsVendorName(vendor)) {
          return Invalid(v, absl::StrCat("'", Shown(*s), "' is not a vendor name; use e.g. nvidia, ascend, cambricon"));
        }
        wish.vendor = vendor;
        has_vendor = true;
      } else if (e.key == "model") {
        absl::StatusOr<std::string> s = Text(v);
        if (!s.ok()) return s.status();
        const bool printable = std::none_of(s->begin(), s->end(), [](char c) {
          return static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) == 0x7F;
        });
        if (s->empty() || s->size() > kMaxModelLength || !printable) {
          return Invalid(v, absl::StrCat("'", Shown(*s), "' is not a model name; use 1-", kMaxModelLength,
                                         " printable characters, e.g. A100-80G"));
        }
        wish.model = *s;
      } else {
        double t = 0;
        if (!v.node.IsScalar() || !absl::SimpleAtod(v.node.Scalar(), &t) || !std::isfinite(t) || t < 0 ||
            t > kMaxThroughput) {
          return Invalid(v, absl::StrCat(Describe(v.node),
                                         " is not a throughput; use a number of 0 or more (0: unknown), e.g. 1.5"));
        }
        wish.throughput = t == 0 ? 0.0 : t;  // no -0
      }
    }
    if (!has_vendor) {
      const std::string message = wish.model.empty() ? "required in each device type, e.g. {vendor: nvidia}"
                                                     : absl::StrCat("required: model '", Shown(wish.model),
                                                                    "' needs its vendor, e.g. vendor: nvidia");
      return Invalid(Child(wish_field.path, "vendor"), wish_field.mark, message);
    }
    wishes.push_back(std::move(wish));
  }
  return wishes;
}

absl::StatusOr<std::map<std::string, std::string>> Parser::Env(const Field& f) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping of variable names to values");
  if (!entries.ok()) return entries.status();
  std::map<std::string, std::string> env;
  for (const Entry& e : *entries) {
    if (!IsEnvName(e.key)) {
      return Invalid(e.field, absl::StrCat("'", Shown(e.key),
                                           "' is not a valid variable name; use letters, digits and _, not starting "
                                           "with a digit"));
    }
    if (e.field.node.IsNull()) {
      return Invalid(e.field, absl::StrCat("has no value; write ", e.key, ": \"\" for an empty string"));
    }
    absl::StatusOr<std::string> value = Text(e.field);
    if (!value.ok()) return value.status();
    env.emplace(e.key, *std::move(value));
  }
  return env;
}

absl::StatusOr<std::map<std::string, std::string>> Parser::NodeSelector(const Field& f) {
  absl::StatusOr<std::vector<Entry>> entries = Entries(f, "a mapping of node labels to values, e.g. {zone: a}");
  if (!entries.ok()) return entries.status();
  std::map<std::string, std::string> selector;
  for (const Entry& e : *entries) {
    if (!IsLabelKey(e.key)) {
      return Invalid(e.field, absl::StrCat("'", Shown(e.key),
                                           "' is not a valid label; use letters, digits, '-', '_', '.' and '/', "
                                           "starting and ending with a letter or digit"));
    }
    if (e.field.node.IsNull()) {
      return Invalid(e.field, absl::StrCat("has no value; write ", e.key, ": \"\" to match an empty label"));
    }
    absl::StatusOr<std::string> value = Text(e.field);
    if (!value.ok()) return value.status();
    if (!IsLabelValue(*value)) {
      return Invalid(e.field, absl::StrCat("'", Shown(*value),
                                           "' is not a valid label value; use up to 63 letters, digits, '-', '_' "
                                           "and '.', starting and ending with a letter or digit"));
    }
    selector.emplace(e.key, *std::move(value));
  }
  return selector;
}

}  // namespace detail

const char* FrameworkName(Framework f) { return NameOf(kFrameworks, f).data(); }

const char* RestartPolicyName(RestartPolicy p) { return NameOf(kRestartPolicies, p).data(); }

const char* JobKindName(JobKind k) { return NameOf(kJobKinds, k).data(); }

const char* AffinityName(core::Affinity a) { return NameOf(kAffinities, a).data(); }

static_assert(CheckpointSpec{}.signal == SIGUSR1, "the default checkpoint signal is SIGUSR1");

std::vector<std::string> NotifyEventNames(uint32_t on) {
  std::vector<std::string> out;
  for (const auto& [v, name] : kNotifyEvents) {
    if ((on & v) != 0) out.emplace_back(name);
  }
  return out;
}

uint32_t NotifyEventByName(absl::string_view name) {
  for (const auto& [v, n] : kNotifyEvents) {
    if (n == name) return v;
  }
  return 0;
}

const char* CheckpointSignalName(int32_t signal) {
  for (const auto& [v, name] : kCheckpointSignals) {
    if (v == signal) return name.data();
  }
  return nullptr;
}

absl::StatusOr<JobSpec> ParseJobSpec(const std::string& text, const SpecLimits& limits) {
  if (text.size() > limits.max_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec: ", text.size(), " bytes is above the limit of ", limits.max_bytes, " bytes"));
  }
  if (const size_t bad = FirstInvalidUtf8(text); bad != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("spec (line ", LineOf(text, bad), "): the text is not valid UTF-8"));
  }
  if (const size_t nul = text.find('\0'); nul != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("spec (line ", LineOf(text, nul), "): contains a NUL byte"));
  }
  if (const int line = LineExceedingNesting(text, kMaxNesting); line > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec (line ", line, "): nested more than ", kMaxNesting, " levels deep"));
  }
  YAML::Node root;
  try {
    // yaml-cpp 0.7's LoadAll never returns on a stray "," after a top-level
    // flow collection ("{a: 1},"): it yields empty documents forever. So
    // count documents ourselves, stopping at three, then load the first.
    if (absl::Status s = CheckSingleDocument(text); !s.ok()) return s;
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    std::string where = "spec";
    if (!e.mark.is_null()) where = absl::StrCat("spec (line ", e.mark.line + 1, ", column ", e.mark.column + 1, ")");
    return absl::InvalidArgumentError(absl::StrCat(where, ": not valid YAML or JSON: ", e.msg));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("spec: not valid YAML or JSON: ", e.what()));
  }
  try {
    Parser parser(limits);
    absl::StatusOr<JobSpec> spec = parser.Job(Field{"", root.Mark(), root});
    if (!spec.ok()) return spec;
    if (absl::Status s = CheckJobCost(*spec, limits); !s.ok()) return s;
    return spec;
  } catch (const std::exception& e) {
    // yaml-cpp throws only on misuse, which the parser avoids; still, never let it escape.
    return absl::InvalidArgumentError(absl::StrCat("spec: could not read: ", e.what()));
  }
}

}  // namespace icos::api
