#include "cli/run_command.h"

#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/job_spec.h"

namespace icos::cli {
namespace {

using json = nlohmann::json;

std::atomic<int> g_stop_signal{0};

void OnStopSignal(int sig) { g_stop_signal.store(sig); }

// "vendor/model:N" -> the resources' device count and the devices list.
absl::Status AddDevices(const std::string& text, json& resources, json& task) {
  std::string what = text;
  int32_t count = 1;
  if (const size_t colon = text.rfind(':'); colon != std::string::npos) {
    what = text.substr(0, colon);
    if (!absl::SimpleAtoi(text.substr(colon + 1), &count) || count < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--devices ", text, ": the count after ':' must be a whole number >= 1"));
    }
  } else if (int32_t n = 0; absl::SimpleAtoi(text, &n)) {
    what.clear();  // a bare number: any device type
    if (n < 1) return absl::InvalidArgumentError(absl::StrCat("--devices ", text, ": must be >= 1"));
    count = n;
  }
  resources["devices"] = count;
  if (!what.empty()) {
    std::vector<std::string> parts = absl::StrSplit(what, absl::MaxSplits('/', 1));
    json wish = {{"vendor", parts[0]}};
    if (parts.size() > 1 && !parts[1].empty()) wish["model"] = parts[1];
    task["devices"] = json::array({wish});
  }
  return absl::OkStatus();
}

// The exit code of the job's first task of its last attempt (its signal as
// 128 + N, as a shell reports it).
int TaskExitCode(const json& job) {
  int latest = 0;
  for (const auto& t : job["tasks"]) latest = std::max(latest, t.value("attempt", 0));
  for (const auto& t : job["tasks"]) {
    if (t.value("attempt", 0) != latest) continue;
    const int code = t.value("exit_code", 1);
    if (t.value("state", "") == "Failed" || code != 0) return code > 0 && code < 256 ? code : 1;
  }
  return 1;
}

}  // namespace

absl::StatusOr<TaskLogChunk> ReadTaskLog(ApiClient& api, int64_t job, int32_t task, int64_t offset, bool wait_for_start,
                                         int32_t attempt) {
  auto r = api.Request("GET", absl::StrCat("/api/v1/jobs/", job, "/logs?task=", task, "&offset=", offset,
                                           attempt >= 0 ? absl::StrCat("&attempt=", attempt) : ""));
  if (!r.ok()) return r.status();
  TaskLogChunk out{.next = offset};
  if (r->status == 409 && wait_for_start) {
    out.not_started = true;
    return out;
  }
  if (r->status != 200) return StatusFromReply(*r, api.base_url());
  out.text = std::move(r->body);
  if (auto it = r->headers.find("X-Icos-Offset"); it != r->headers.end()) absl::SimpleAtoi(it->second, &out.next);
  auto fin = r->headers.find("X-Icos-Finished");
  out.finished = fin != r->headers.end() && fin->second == "1";
  return out;
}

absl::StatusOr<std::string> RunSpec(const RunFlags& f) {
  if (f.command.empty()) return absl::InvalidArgumentError("icos run needs a command after --");
  json task = {{"name", "run"}, {"replicas", f.replicas}, {"command", f.command}};
  json resources = json::object();
  if (!f.cpus.empty()) resources["cpu"] = f.cpus;
  if (!f.memory.empty()) resources["memory"] = f.memory;
  if (!f.devices.empty()) {
    if (absl::Status st = AddDevices(f.devices, resources, task); !st.ok()) return st;
  }
  if (!f.share.empty()) resources["device_share"] = f.share;
  if (!resources.empty()) task["resources"] = resources;
  json env = json::object();
  for (const std::string& kv : f.env) {
    const size_t eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("--env ", kv, ": expected NAME=VALUE"));
    }
    env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (!env.empty()) task["env"] = env;
  if (!f.workdir.empty()) task["workdir"] = f.workdir;
  std::string name = f.name;
  if (name.empty()) {
    // The command's base name, as a job name accepts it ("python3.11" -> "python3-11").
    name = api::ToJobName(std::filesystem::path(f.command[0]).filename().string());
    if (name.empty()) name = "run";
  }
  json spec = {{"name", name}, {"tasks", json::array({task})}};
  if (!f.queue.empty()) spec["queue"] = f.queue;
  if (!f.time_limit.empty()) spec["time_limit"] = f.time_limit;
  if (!f.framework.empty()) spec["framework"] = f.framework;
  return spec.dump();
}

int RunAttached(ApiClient& api, const RunFlags& flags, std::ostream& out, std::ostream& err) {
  auto spec = RunSpec(flags);
  if (!spec.ok()) {
    err << "icos: " << spec.status().message() << "\n";
    return 1;
  }
  auto submitted = api.Json("POST", "/api/v1/jobs", *spec, "application/yaml",
                            {{"X-Icos-Workdir", flags.workdir}, {"Idempotency-Key", NewIdempotencyKey()}});
  if (!submitted.ok()) {
    err << "icos: " << submitted.status().message() << "\n";
    return 1;
  }
  const int64_t id = (*submitted)["id"].get<int64_t>();
  err << "icos: job " << id << " submitted\n" << std::flush;
  // Ctrl-C (or a SIGTERM) cancels the job; a second one leaves at once.
  g_stop_signal.store(0);
  struct sigaction sa = {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  struct sigaction old_int = {}, old_term = {};
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  auto restore = [&] {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  };
  bool cancelled = false;
  std::string said;  // the waiting reason last shown
  int drains = 0;    // looks at the log after the job ended (a task that never ran has none)
  int64_t offset = 0;
  bool log_done = false;
  while (true) {
    if (g_stop_signal.load() != 0 && !cancelled) {
      cancelled = true;
      g_stop_signal.store(0);
      err << "\nicos: cancelling job " << id << "\n" << std::flush;
      auto c = api.Json("POST", absl::StrCat("/api/v1/jobs/", id, "/cancel"));
      if (!c.ok() && c.status().code() != absl::StatusCode::kFailedPrecondition) {
        err << "icos: cancel: " << c.status().message() << "\n";
      }
    } else if (g_stop_signal.load() != 0 && cancelled) {
      err << "icos: leaving; job " << id << " is being cancelled\n";
      restore();
      return 130;
    }
    auto job = api.Json("GET", absl::StrCat("/api/v1/jobs/", id));
    if (!job.ok()) {
      if (job.status().code() == absl::StatusCode::kUnavailable) {  // a restarting server: keep waiting
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      err << "icos: " << job.status().message() << "\n";
      restore();
      return 1;
    }
    const std::string state = (*job)["state"].get<std::string>();
    const std::string reason = (*job).value("reason", "");
    if (state == "Pending" && reason != said && !reason.empty()) {
      err << "icos: job " << id << " waits: " << reason << "\n" << std::flush;
      said = reason;
      if (absl::StartsWith(reason, "NeverFits")) {
        // It would wait forever: say so and take it back.
        api.Json("POST", absl::StrCat("/api/v1/jobs/", id, "/cancel")).IgnoreError();
        restore();
        return 1;
      }
    }
    // Stream what the first task has written since the last look.
    if (!log_done && state != "Pending") {
      auto read = ReadTaskLog(api, id, /*task=*/0, offset, /*wait_for_start=*/true);
      if (read.ok() && !read->not_started) {
        out << read->text << std::flush;
        offset = read->next;
        log_done = read->finished && read->text.empty();
        if (!read->text.empty()) continue;  // more may be there at once
      }
    }
    const bool ended = state == "Succeeded" || state == "Failed" || state == "Cancelled";
    if (ended && (log_done || state == "Cancelled" || ++drains > 100)) {
      restore();
      if (state == "Succeeded") return 0;
      if (state == "Cancelled") {
        err << "icos: job " << id << " cancelled" << (cancelled ? "" : absl::StrCat(": ", reason)) << "\n";
        return cancelled ? 130 : 1;
      }
      err << "icos: job " << id << " failed: " << reason << "\n";
      return TaskExitCode(*job);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(ended ? 50 : 300));
  }
}

}  // namespace icos::cli
