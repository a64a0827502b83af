#include "cli/job_control.h"

#include <httplib.h>  // query-parameter encoding

#include <CLI/CLI.hpp>
#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/job_spec.h"

namespace icos::cli {

using nlohmann::json;

namespace {

// Every job the listing `query` (URL parameters after limit) gives, newest
// first, paged through.
absl::StatusOr<std::vector<int64_t>> ListedIds(ApiClient& api, const std::string& query) {
  std::vector<int64_t> ids;
  int64_t before = 0;
  while (true) {
    auto page = api.Json(
        "GET", absl::StrCat("/api/v1/jobs?limit=10000", query, before > 0 ? absl::StrCat("&before=", before) : ""));
    if (!page.ok()) return page.status();
    for (const auto& j : (*page)["jobs"]) ids.push_back(j["id"].get<int64_t>());
    if (!page->contains("next_before")) break;
    before = (*page)["next_before"].get<int64_t>();
  }
  return ids;
}

constexpr char kAllStates[] = "&state=Pending,Running,Succeeded,Failed,Cancelled";

}  // namespace

absl::StatusOr<int64_t> ResolveJobId(ApiClient& api, const std::string& text) {
  int64_t id = 0;
  if (absl::SimpleAtoi(text, &id) && id > 0) return id;
  const size_t sep = text.find('_');
  int64_t array = 0, index = 0;
  if (sep == std::string::npos || !absl::SimpleAtoi(text.substr(0, sep), &array) ||
      !absl::SimpleAtoi(text.substr(sep + 1), &index) || array <= 0 || index < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a job id (123) or an array's element (123_4: index 4 of array 123)"));
  }
  auto ids = ListedIds(api, absl::StrCat(kAllStates, "&array=", array, "&index=", index));
  if (!ids.ok()) return ids.status();
  if (ids->empty()) return absl::NotFoundError(absl::StrCat("array ", array, " has no element ", index));
  return ids->front();
}

absl::StatusOr<std::vector<int64_t>> SelectJobs(ApiClient& api, const JobSelection& selection) {
  if (!selection.ids.empty() && selection.HasFilter()) {
    return absl::InvalidArgumentError("give job ids or filters (--user, --queue, --state, --name), not both");
  }
  if (!selection.ids.empty()) {
    std::vector<int64_t> ids;
    for (const std::string& text : selection.ids) {
      auto id = ResolveJobId(api, text);
      if (!id.ok()) return id.status();
      // An array's own id: every element not yet ended.
      auto job = text.find('_') == std::string::npos ? api.Json("GET", absl::StrCat("/api/v1/jobs/", *id))
                                                     : absl::StatusOr<json>(json());
      // A service's own id stops the whole service, at the controller: its
      // replicas cancelled one by one would be replaced.
      if (job.ok() && job->is_object() && job->value("array_id", int64_t{0}) == *id &&
          job->value("kind", "") != "service") {
        auto elements = ListedIds(api, absl::StrCat("&state=Pending,Running&array=", *id));
        if (!elements.ok()) return elements.status();
        ids.insert(ids.end(), elements->rbegin(), elements->rend());
        continue;
      }
      ids.push_back(*id);
    }
    return ids;
  }
  if (!selection.HasFilter()) {
    return absl::InvalidArgumentError("which jobs? give job ids, or filters: --user, --queue, --state, --name");
  }
  std::string query = absl::StrCat(
      "&state=", httplib::detail::encode_query_param(selection.state.empty() ? "Pending,Running" : selection.state));
  for (const auto& [key, value] :
       {std::pair{"user", selection.user}, {"queue", selection.queue}, {"name", selection.name}}) {
    if (!value.empty()) absl::StrAppend(&query, "&", key, "=", httplib::detail::encode_query_param(value));
  }
  return ListedIds(api, query);
}

std::vector<JobRow> JobRows(const json& jobs, bool expand_arrays) {
  auto kind = [](const std::string& reason) { return reason.substr(0, reason.find(':')); };
  std::vector<JobRow> rows;
  std::vector<int32_t> folded;  // indices of the last row, when it is an array's
  int64_t last_array = 0;
  auto close = [&] {
    if (last_array != 0 && folded.size() > 1) {
      std::sort(folded.begin(), folded.end());
      rows.back().id = absl::StrCat(last_array, "_[", api::FormatArrayIndices(folded, 0), "]");
    }
    folded.clear();
    last_array = 0;
  };
  for (const json& j : jobs) {
    const int64_t array = j.value("array_id", int64_t{0});
    const int32_t index = j.value("array_index", -1);
    const std::string state = j.value("state", ""), reason = j.value("reason", "");
    if (!expand_arrays && array != 0 && array == last_array && rows.back().state == state &&
        kind(rows.back().reason) == kind(reason)) {
      folded.push_back(index);
      continue;
    }
    close();
    JobRow row{.id = array != 0 ? absl::StrCat(array, "_", index) : absl::StrCat(j.value("id", int64_t{0})),
               .name = j.value("name", ""),
               .user = j.value("user", ""),
               .queue = j.value("queue", ""),
               .state = state,
               .reason = reason,
               .submit_ms = j.value("submit_ms", int64_t{0}),
               .start_forecast = j.value("start_forecast", json())};
    rows.push_back(std::move(row));
    if (array != 0) {
      last_array = array;
      folded.push_back(index);
    }
  }
  close();
  return rows;
}

void AddJobControlCommands(CLI::App& app, JobControlCommands& c,
                           const std::function<void(CLI::App*, bool json_output)>& common) {
  JobSelection& s = c.selection;
  auto ids_and_filters = [&](CLI::App* sub) {
    sub->add_option("ids", s.ids, "job ids; an array's id is all its elements, ARRAY_INDEX one of them");
    sub->add_option("--user", s.user, "every job of this user (admins; a user acts on their own)");
    sub->add_option("--queue", s.queue, "every job in this queue");
    sub->add_option("--name", s.name, "every job of this name");
    sub->add_option("--state", s.state,
                    "with the filters: jobs in these states, comma-separated (default: "
                    "Pending,Running)");
    common(sub, true);
  };
  c.cancel = app.add_subcommand("cancel", "Cancel jobs by id or by filter (scancel): SIGTERM, grace period, SIGKILL");
  ids_and_filters(c.cancel);
  c.hold = app.add_subcommand("hold", "Hold pending jobs back from scheduling (scontrol hold)");
  ids_and_filters(c.hold);
  c.release = app.add_subcommand("release", "Release held jobs (scontrol release)");
  ids_and_filters(c.release);
  c.requeue = app.add_subcommand(
      "requeue", "Stop running jobs and put them back in their queue, no retry spent (scontrol requeue)");
  c.requeue->add_option("ids", s.ids, "job ids (ARRAY_INDEX: one element)")->required();
  c.requeue->add_flag("--hold", c.requeue_hold, "and hold them there (scontrol requeuehold)");
  common(c.requeue, true);
  c.update = app.add_subcommand("update", "Change a job's priority, time limit or run-time estimate (scontrol update)");
  c.update->add_option("ids", s.ids, "job ids (an array's id: all its elements)")->required();
  c.update->add_option("--priority", c.priority, "priority within the queue (users: up to its max_priority)");
  c.update->add_option("-t,--time", c.time_limit, "time limit of a pending job: 30m, 2h; 0: none");
  c.update->add_option("--estimate", c.estimate, "run-time estimate of a pending job: 30m, 2h; 0: none");
  common(c.update, true);
}

int RunJobControlCommand(const JobControlCommands& c, ApiClient& api, bool as_json, std::ostream& out,
                         std::ostream& err) {
  struct Verb {
    CLI::App* app;
    const char* method;
    std::string suffix;  // after /api/v1/jobs/ID
    const char* done;    // "job N <done>"
  };
  const std::string requeue = c.requeue_hold ? "/requeue?hold=true" : "/requeue";
  const Verb verbs[] = {{c.cancel, "POST", "/cancel", "cancelled"},
                        {c.hold, "POST", "/hold", "held"},
                        {c.release, "POST", "/release", "released"},
                        {c.requeue, "POST", requeue, c.requeue_hold ? "requeued and held" : "requeued"},
                        {c.update, "PATCH", "", "updated"}};
  const Verb* verb = nullptr;
  for (const Verb& v : verbs) {
    if (v.app != nullptr && v.app->parsed()) verb = &v;
  }
  if (verb == nullptr) return -1;
  auto fail = [&](const absl::Status& st) {
    err << "icos: " << st.message() << "\n";
    return st.code() == absl::StatusCode::kUnavailable ? 3 : 1;
  };
  std::string body;
  if (verb->app == c.update) {
    json update = json::object();
    if (!c.priority.empty()) {
      int32_t p = 0;
      if (!absl::SimpleAtoi(c.priority, &p)) {
        return fail(absl::InvalidArgumentError(absl::StrCat("--priority '", c.priority, "' is not a whole number")));
      }
      update["priority"] = p;
    }
    if (!c.time_limit.empty()) update["time_limit"] = c.time_limit;
    if (!c.estimate.empty()) update["runtime_estimate"] = c.estimate;
    if (update.empty())
      return fail(absl::InvalidArgumentError("nothing to update: give --priority, --time or --estimate"));
    body = update.dump();
  }
  auto ids = SelectJobs(api, c.selection);
  if (!ids.ok()) return fail(ids.status());
  if (ids->empty() && !as_json) out << "no jobs match\n";
  int rc = 0;
  json replies = json::array();
  for (int64_t id : *ids) {
    auto r = api.Json(verb->method, absl::StrCat("/api/v1/jobs/", id, verb->suffix), body,
                      body.empty() ? "text/plain" : "application/json");
    if (!r.ok()) {
      err << "icos: job " << id << ": " << r.status().message() << "\n";
      rc = r.status().code() == absl::StatusCode::kUnavailable ? 3 : std::max(rc, 1);
      continue;
    }
    replies.push_back(*r);
    if (!as_json) out << "job " << id << " " << verb->done << "\n";
  }
  if (as_json) out << replies.dump(2) << "\n";
  return rc;
}

}  // namespace icos::cli
