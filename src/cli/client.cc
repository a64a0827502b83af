#include "cli/client.h"

#include <httplib.h>  // query-parameter encoding
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/job_control.h"
#include "cli/run_command.h"
#include "cli/service_command.h"
#include "cli/summary.h"
#include "protocol/http_client.h"

namespace icos::cli {
namespace {

using nlohmann::json;

// How long `icos submit` keeps retrying a submission it could not confirm
// (a controller restart or a failover takes seconds).
constexpr int64_t kSubmitRetryMs = 30'000;

// "45s", "12m", "5h", "3d": a duration to the unit that reads best.
std::string Span(int64_t s) {
  if (s < 120) return absl::StrCat(s, "s");
  if (s < 7200) return absl::StrCat(s / 60, "m");
  if (s < 172800) return absl::StrCat(s / 3600, "h");
  return absl::StrCat(s / 86400, "d");
}

std::string Age(int64_t since_ms) {
  if (since_ms <= 0) return "-";
  const int64_t now =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  return Span(std::max<int64_t>(0, (now - since_ms) / 1000));
}

// KiB as sacct shows MaxRSS: "812K", "1.5G"; "-" when unknown.
std::string Kib(int64_t kib) {
  if (kib <= 0) return "-";
  if (kib < 1024) return absl::StrCat(kib, "K");
  const double mib = static_cast<double>(kib) / 1024;
  if (mib < 1024) return absl::StrFormat(mib < 10 ? "%.1fM" : "%.0fM", mib);
  return absl::StrFormat("%.1fG", mib / 1024);
}

std::string Clip(const std::string& s, size_t n) { return s.size() <= n ? s : s.substr(0, n - 3) + "..."; }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// When a forecast quantile (Unix ms or null) lies from now: "in 12m", "now",
// "later" (beyond the forecast's horizon).
std::string Until(const json& at_ms) {
  if (!at_ms.is_number()) return "later";
  const int64_t s = (at_ms.get<int64_t>() - NowMs()) / 1000;
  return s <= 0 ? "now" : absl::StrCat("in ", Span(s));
}

// A spec's dependencies on one line, as Slurm's --dependency writes them:
// "afterok:12,13 afternotok:14"; a list past 8 ids (an array's elements)
// shows its first ones and how many more.
std::string DependencyList(const json& deps) {
  if (!deps.is_object()) return "";
  std::string out;
  for (const auto& [field, slurm] :
       {std::pair{"after_ok", "afterok"}, {"after_any", "afterany"}, {"after_not_ok", "afternotok"}}) {
    const json ids = deps.value(field, json::array());
    if (!ids.is_array() || ids.empty()) continue;
    absl::StrAppend(&out, out.empty() ? "" : " ", slurm, ":");
    for (size_t i = 0; i < ids.size() && i < 8; ++i) {
      absl::StrAppend(&out, i == 0 ? "" : ",", ids[i].is_number() ? ids[i].get<int64_t>() : 0);
    }
    if (ids.size() > 8) absl::StrAppend(&out, " (and ", ids.size() - 8, " more)");
  }
  return out;
}

}  // namespace

std::string IcosHome() {
  if (const char* h = std::getenv("ICOS_HOME"); h != nullptr && *h) return h;
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : ".", "/.icos");
}

absl::StatusOr<int64_t> ParseTimeArg(const std::string& text, int64_t now_s) {
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("bad time '", text,
                     "': use a duration back from now (90s, 30m, 12h, 7d, 2w), a date "
                     "(2026-11-01, UTC), RFC 3339 (2026-11-01T08:00:00Z) or Unix seconds"));
  };
  if (text.empty()) return bad();
  int64_t n = 0;
  if (absl::SimpleAtoi(text, &n)) return n;
  const char unit = text.back();
  static const std::map<char, int64_t> kUnits = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86'400}, {'w', 7 * 86'400}};
  if (auto u = kUnits.find(unit); u != kUnits.end() && absl::SimpleAtoi(text.substr(0, text.size() - 1), &n)) {
    if (n < 0 || n > (int64_t{1} << 40) / u->second) return bad();
    return now_s - n * u->second;
  }
  absl::Time t;
  std::string err;
  if (absl::ParseTime(absl::RFC3339_full, text, &t, &err) ||
      absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &t, &err)) {
    return absl::ToUnixSeconds(t);
  }
  return bad();
}

void SaveConnection(const std::string& home, const Connection& c) {
  std::filesystem::create_directories(home);
  const std::string path = home + "/config.json";
  {
    std::ofstream f(path, std::ios::trunc);
    json cfg = {{"server", c.server}, {"token", c.token}};
    if (!c.ca_cert.empty()) cfg["ca_cert"] = c.ca_cert;
    f << cfg.dump(2) << "\n";
  }
  ::chmod(path.c_str(), 0600);
}

struct ClientCommands {
  Connection conn;
  std::string output = "table";
  CLI::App* submit = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* job = nullptr;
  CLI::App* logs = nullptr;
  JobControlCommands control;  // cancel, hold, release, requeue, update
  ServiceCommands services;    // endpoints
  CLI::App* wait = nullptr;
  CLI::App* nodes = nullptr;
  CLI::App* queues = nullptr;
  CLI::App* summary = nullptr;
  CLI::App* queue_put = nullptr;
  CLI::App* token_create = nullptr;
  CLI::App* token_list = nullptr;
  CLI::App* token_revoke = nullptr;
  CLI::App* devices = nullptr;
  CLI::App* node_drain = nullptr;
  CLI::App* node_resume = nullptr;
  CLI::App* usage = nullptr;
  CLI::App* run = nullptr;
  RunFlags run_flags;
  std::string since = "7d", until, by = "user";
  std::string node_name;
  int32_t device = -1;  // node drain/resume --device; -1: the whole node
  std::string file;
  std::string idempotency_key;
  std::string chdir;
  bool hold = false;           // submit --hold
  std::string dependency;      // submit --dependency
  std::string job_ref;         // job, logs, wait: "123" or an array element "123_4"
  int64_t job_id = 0;          // job_ref resolved
  bool all_states = false;     // jobs --all
  bool expand_arrays = false;  // jobs -r
  bool show_start = false;     // jobs --start
  std::string array;           // submit --array
  int64_t tail_lines = -1;     // logs --tail; -1: the whole log
  int32_t task = 0;
  int32_t attempt = -1;  // icos logs --attempt; -1: the latest
  bool follow = false;
  std::string state;
  int64_t timeout_s = 0;
  std::string role = "user", user, name;
  int64_t uid = -1, gid = -1;
  std::string ttl;
  std::string which;                // token revoke: an id or a name
  std::string queue;                // jobs --queue
  std::string job_name;             // jobs --name
  int64_t limit = 100, before = 0;  // jobs -n, --before
};

ClientCommands* AddClientCommands(CLI::App& app) {
  auto* c = new ClientCommands();
  auto common = [c](CLI::App* sub, bool json_output = true) {
    sub->add_option("--server", c->conn.server,
                    "API address; several (a leader and its standbys) comma-separated (default: $ICOS_SERVER or "
                    "~/.icos/config.json)");
    sub->add_option("--token", c->conn.token, "bearer token (default: $ICOS_TOKEN or ~/.icos/config.json)");
    sub->add_option("--ca-cert", c->conn.ca_cert,
                    "CA certificate (PEM) an https:// server's certificate must chain to, e.g. the ca.crt of "
                    "`icos tls init` (default: $ICOS_CA_CERT, ~/.icos/config.json's ca_cert for its server, else "
                    "the system's CAs)");
    if (json_output)
      sub->add_option("-o,--output", c->output, "table or json")->check(CLI::IsMember({"table", "json"}));
  };
  c->submit = app.add_subcommand("submit", "Submit a job spec (YAML or JSON)");
  c->submit->add_option("file", c->file, "job spec file, or - for stdin")->required();
  c->submit->add_option("-D,--chdir", c->chdir,
                        "the directory the tasks run in and relative paths are resolved against (default: the spec "
                        "file's directory; the current one for stdin)");
  c->submit->add_option("--idempotency-key", c->idempotency_key,
                        "a key of yours for this submission: submitting again with it within 24 h returns the same "
                        "job (default: a fresh one each time)");
  c->submit->add_flag("-H,--hold", c->hold, "hold it at once: it waits until `icos release ID`");
  c->submit->add_option("-a,--array", c->array,
                        "submit a job array instead: one job per index, 0-99, 1,3,5-9 or 0-98:2, %N at most N "
                        "running at once (each task gets ICOS_ARRAY_INDEX); in place of the spec's own array");
  c->submit->add_option("-d,--dependency", c->dependency,
                        "start only after other jobs ended (Slurm's form): afterok:ID[:ID...], afterany:ID..., "
                        "afternotok:ID..., comma-separated; added to the spec's own dependencies");
  common(c->submit);
  c->run = app.add_subcommand("run",
                              "Run a command as a job and stay attached (srun): its output here, Ctrl-C "
                              "cancels, its exit code is this command's");
  {
    RunFlags& f = c->run_flags;
    c->run->add_option("command", f.command, "the command and its arguments, after --")->required();
    c->run->add_option("--name", f.name, "job name (default: the command's name)");
    c->run->add_option("-q,--queue", f.queue, "queue (default: default)");
    c->run->add_option("-c,--cpus", f.cpus, "CPUs per task: 2, 500m (default 1)");
    c->run->add_option("--mem", f.memory, "memory per task: 4Gi (default 1Gi)");
    c->run->add_option("-G,--devices", f.devices, "devices per task: N, vendor:N, vendor/model:N");
    c->run->add_option("--share", f.share, "a share of one device instead: 30%");
    // One value per -e: a vector option would otherwise swallow what follows.
    c->run->add_option("-e,--env", f.env, "NAME=VALUE for the task (repeatable)")->allow_extra_args(false);
    c->run->add_option("-t,--time", f.time_limit, "time limit: 30m, 2h");
    c->run->add_option("-n,--replicas", f.replicas, "tasks (default 1; the first one's output is shown)")
        ->check(CLI::Range(1, 4096));
    c->run->add_option("--framework", f.framework, "none, pytorch, mpi, deepspeed, mindspore, paddle, tensorflow");
    c->run->add_option("-D,--chdir", c->chdir, "where the task runs (default: here)");
    common(c->run, false);
  }
  c->jobs = app.add_subcommand("jobs", "List jobs");
  c->jobs->add_option("--state", c->state,
                      "only jobs in these states, comma-separated: Pending, Running, Succeeded, Failed, Cancelled "
                      "(default: Pending,Running, as squeue)");
  c->jobs->add_flag("-a,--all", c->all_states, "jobs in every state, ended ones too (as sacct)");
  c->jobs->add_option("--user", c->user, "only this user's jobs (admins; a user sees only their own)");
  c->jobs->add_option("--queue", c->queue, "only this queue's jobs");
  c->jobs->add_option("--name", c->job_name, "only jobs of this name");
  c->jobs->add_flag("--start", c->show_start,
                    "pending jobs' expected start (the P50 of a forecast made by running the scheduler forward)");
  c->jobs->add_flag("-r,--array-elements", c->expand_arrays,
                    "a row per array element (default: an array's elements alike fold into one row)");
  c->jobs->add_option("-n,--limit", c->limit, "at most this many, newest first (default 100)")
      ->check(CLI::Range(1, 10'000));
  c->jobs->add_option("--before", c->before, "only jobs older than this id (the next page)");
  common(c->jobs);
  c->job = app.add_subcommand("job", "Show one job: tasks, placement, events, waiting reason");
  c->job->add_option("id", c->job_ref, "job id, or ARRAY_INDEX for an array's element")->required();
  common(c->job);
  c->logs = app.add_subcommand("logs", "Print a task's log");
  c->logs->add_option("id", c->job_ref, "job id, or ARRAY_INDEX for an array's element")->required();
  c->logs->add_option("--task", c->task, "task index as `icos job` lists it (default 0)");
  c->logs->add_option("--attempt", c->attempt, "an earlier attempt's log (0: the first run; default: the latest)")
      ->check(CLI::NonNegativeNumber);
  c->logs->add_flag("-f,--follow", c->follow, "keep printing until the task ends");
  c->logs->add_option("-n,--tail", c->tail_lines, "start with the last N lines only")->check(CLI::Range(0, 1'000'000));
  common(c->logs, false);
  AddJobControlCommands(app, c->control, common);
  AddServiceCommands(app, c->services, common);
  c->wait = app.add_subcommand("wait", "Wait until a job ends; exit 0 only if it succeeded");
  c->wait->add_option("id", c->job_ref, "job id, or ARRAY_INDEX for an array's element")->required();
  c->wait->add_option("--timeout", c->timeout_s, "give up after this many seconds (0: never)");
  common(c->wait, false);
  c->nodes = app.add_subcommand("nodes", "List nodes and their devices");
  common(c->nodes);
  c->queues = app.add_subcommand("queues", "List queues");
  common(c->queues);
  c->summary = app.add_subcommand(
      "summary", "Devices by vendor/model (total, in use, free, out of service), nodes and queues at a glance (sinfo)");
  common(c->summary, false);
  c->devices = app.add_subcommand("devices", "List every device: vendor, model, memory, NUMA node, island, health");
  c->devices->add_option("node", c->node_name, "only this node");
  common(c->devices);
  auto* node =
      app.add_subcommand("node", "Drain or resume a node or one of its devices (admin)")->require_subcommand(1);
  c->node_drain = node->add_subcommand("drain", "Take a node (or one device) out of scheduling; running tasks stay");
  c->node_drain->add_option("name", c->node_name, "node")->required();
  c->node_drain->add_option("--device", c->device, "only this device (its INDEX in `icos devices NODE`)")
      ->check(CLI::Range(0, 1'000'000));
  common(c->node_drain);
  c->node_resume = node->add_subcommand("resume", "Put a drained node (or device) back into scheduling");
  c->node_resume->add_option("name", c->node_name, "node")->required();
  c->node_resume->add_option("--device", c->device, "only this device (its INDEX in `icos devices NODE`)")
      ->check(CLI::Range(0, 1'000'000));
  common(c->node_resume);
  c->queue_put = app.add_subcommand("queue", "Manage queues")->require_subcommand(1);
  auto* put = c->queue_put->add_subcommand("put", "Create or replace a queue from a JSON file (admin)");
  put->add_option("file", c->file, "queue JSON")->required();
  common(put);
  c->queue_put = put;
  auto* token = app.add_subcommand("token", "Manage tokens")->require_subcommand(1);
  c->token_create = token->add_subcommand("create", "Create a token (admin); prints the secret once");
  c->token_create->add_option("--role", c->role, "admin, user, agent (joins nodes) or gateway (`icos gateway`)")
      ->check(CLI::IsMember({"admin", "user", "agent", "gateway"}));
  c->token_create->add_option("--user", c->user, "user the token acts as (role user)");
  c->token_create->add_option("--name", c->name, "a label for the token");
  c->token_create->add_option("--uid", c->uid,
                              "run the user's jobs as this Unix uid instead of the account named --user");
  c->token_create->add_option("--gid", c->gid, "with --uid: the group (default: the uid)");
  c->token_create->add_option("--ttl", c->ttl, "lifetime: 90d, 12h, 30m or seconds (default: no expiry)");
  common(c->token_create);
  c->token_list = token->add_subcommand("list", "List tokens without their secrets (admin)");
  common(c->token_list);
  c->token_revoke = token->add_subcommand("revoke", "Revoke a token by its id or name (admin); it is refused at once");
  c->token_revoke->add_option("token", c->which, "the id (icos token list) or the name")->required();
  common(c->token_revoke);
  c->usage = app.add_subcommand("usage", "Device-hours, CPU-hours and job counts per user or queue over a time window");
  c->usage->add_option("--since", c->since,
                       "start: 7d (back from now), 2026-11-01 (UTC), RFC 3339 or Unix seconds (default 7d)");
  c->usage->add_option("--until", c->until, "end, same forms (default: now)");
  c->usage->add_option("--by", c->by, "user or queue")->check(CLI::IsMember({"user", "queue"}));
  common(c->usage);
  return c;
}

std::string LastLines(const std::string& text, int64_t n) {
  if (n <= 0) return "";
  // A final newline ends the last line; it does not start another.
  size_t end = text.size();
  if (end > 0 && text[end - 1] == '\n') --end;
  size_t from = end;
  for (int64_t seen = 0; from > 0; --from) {
    if (text[from - 1] == '\n' && ++seen == n) break;
  }
  return text.substr(from);
}

absl::StatusOr<std::string> SubmitBaseDir(const std::string& file, const std::string& chdir) {
  namespace fs = std::filesystem;
  auto normal = [](const fs::path& p) {
    std::string out = p.lexically_normal().string();
    if (out.size() > 1 && out.back() == '/') out.pop_back();  // "/a/b/." -> "/a/b"
    return out;
  };
  std::error_code ec;
  if (!chdir.empty()) {
    const fs::path dir = fs::absolute(chdir, ec);
    if (ec || !fs::is_directory(dir, ec)) {
      return absl::InvalidArgumentError(absl::StrCat("--chdir ", chdir, " is not a directory"));
    }
    return normal(dir);
  }
  const fs::path base = file == "-" ? fs::current_path(ec) : fs::absolute(file, ec).parent_path();
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot tell the directory of ", file, ": ", ec.message()));
  return normal(base);
}

absl::Status FillConnection(Connection& c) {
  if (c.server.empty()) {
    if (const char* s = std::getenv("ICOS_SERVER"); s != nullptr) c.server = s;
  }
  if (c.token.empty()) {
    if (const char* t = std::getenv("ICOS_TOKEN"); t != nullptr) c.token = t;
  }
  if (c.ca_cert.empty()) {
    if (const char* a = std::getenv("ICOS_CA_CERT"); a != nullptr) c.ca_cert = a;
  }
  if (c.server.empty() || c.token.empty() || c.ca_cert.empty()) {
    std::ifstream f(IcosHome() + "/config.json");
    json cfg = json::parse(f, nullptr, false);
    if (cfg.is_object()) {
      const std::string server = cfg.value("server", "");
      if (c.server.empty()) c.server = server;
      if (c.token.empty()) c.token = cfg.value("token", "");
      // The CA `icos up --tls` made vouches for that cluster only: another
      // server named by --server or ICOS_SERVER is checked against the
      // system's CAs unless a CA is given for it.
      if (c.ca_cert.empty() && c.server == server) c.ca_cert = cfg.value("ca_cert", "");
    }
  }
  if (c.server.empty()) {
    return absl::FailedPreconditionError("no server: start one with `icos up`, or pass --server / set ICOS_SERVER");
  }
  if (!c.ca_cert.empty() && !absl::StrContains(absl::AsciiStrToLower(c.server), "https://")) {
    return absl::FailedPreconditionError(
        absl::StrCat("a CA certificate (", c.ca_cert, ") is given but the server ", c.server,
                     " is plain http://: use its https:// URL (a server started with --tls-cert/--tls-key or "
                     "`icos up --tls`)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadInput(const std::string& file) {
  std::stringstream buf;
  if (file == "-") {
    buf << std::cin.rdbuf();
  } else {
    std::ifstream f(file);
    if (!f) return absl::NotFoundError(absl::StrCat("cannot read ", file));
    buf << f.rdbuf();
  }
  return buf.str();
}

namespace {

int Print(std::ostream& out, const json& j) {
  out << j.dump(2) << "\n";
  return 0;
}

}  // namespace

int RunClientCommand(ClientCommands* c, std::ostream& out, std::ostream& err) {
  std::unique_ptr<ClientCommands> owned(c);
  auto parsed = [](CLI::App* a) { return a != nullptr && a->parsed(); };
  const JobControlCommands& control = c->control;
  if (!(parsed(c->submit) || parsed(c->jobs) || parsed(c->job) || parsed(c->logs) || parsed(control.cancel) ||
        parsed(control.hold) || parsed(control.release) || parsed(control.requeue) || parsed(control.update) ||
        parsed(c->wait) || parsed(c->nodes) || parsed(c->queues) || parsed(c->summary) || parsed(c->queue_put) ||
        parsed(c->token_create) || parsed(c->token_list) || parsed(c->token_revoke) || parsed(c->devices) ||
        parsed(c->node_drain) || parsed(c->node_resume) || parsed(c->usage) || parsed(c->run) ||
        ServiceCommandParsed(c->services))) {
    owned.release();
    return -1;
  }
  auto fail = [&](const absl::Status& st) {
    err << "icos: " << st.message() << "\n";
    return st.code() == absl::StatusCode::kUnavailable ? 3 : 1;
  };
  if (absl::Status st = FillConnection(c->conn); !st.ok()) return fail(st);
  ApiClient api(c->conn.server, c->conn.token, ApiClientOptions{.ca_cert_file = c->conn.ca_cert});
  const bool as_json = c->output == "json";

  if (parsed(c->job) || parsed(c->logs) || parsed(c->wait)) {
    auto id = ResolveJobId(api, c->job_ref);
    if (!id.ok()) return fail(id.status());
    c->job_id = *id;
  }
  if (parsed(c->run)) {
    // Where the task runs: --chdir, else here (as srun).
    auto dir = SubmitBaseDir("-", c->chdir);
    if (!dir.ok()) return fail(dir.status());
    c->run_flags.workdir = *dir;
    return RunAttached(api, c->run_flags, out, err);
  }
  if (parsed(c->submit)) {
    auto text = ReadInput(c->file);
    if (!text.ok()) return fail(text.status());
    auto base_dir = SubmitBaseDir(c->file, c->chdir);
    if (!base_dir.ok()) return fail(base_dir.status());
    // A key of its own makes the submission safe to retry: a controller that
    // committed the job but whose answer was lost (a restart, a failover, a
    // reset connection) answers the retry with the same job, not a second.
    bool said = false;
    api.set_retry(kSubmitRetryMs, [&](const absl::Status& why) {
      if (!said) err << "icos: " << why.message() << "; retrying for up to " << kSubmitRetryMs / 1000 << " s\n";
      said = true;
    });
    std::string path = "/api/v1/jobs";
    std::string sep = "?";
    if (c->hold) {
      path += "?hold=true";
      sep = "&";
    }
    if (!c->dependency.empty()) {
      absl::StrAppend(&path, sep, "dependency=", httplib::detail::encode_query_param(c->dependency));
      sep = "&";
    }
    if (!c->array.empty()) absl::StrAppend(&path, sep, "array=", httplib::detail::encode_query_param(c->array));
    auto r = api.Json("POST", path, *text, "application/yaml",
                      {{"X-Icos-Workdir", *base_dir},
                       {"Idempotency-Key", c->idempotency_key.empty() ? NewIdempotencyKey() : c->idempotency_key}});
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    if (r->contains("service_id")) {
      const int64_t id = (*r)["service_id"].get<int64_t>();
      out << "service " << id << " submitted: " << (*r)["replicas"].get<int32_t>()
          << " replicas (where they serve: icos endpoints " << id << "; stop it: icos cancel " << id << ")\n";
      return 0;
    }
    if (r->contains("array_id")) {
      const int64_t array = (*r)["array_id"].get<int64_t>();
      out << "array " << array << " submitted: " << (*r)["array"].get<std::string>() << " (one element: icos job "
          << array << "_INDEX; all of them: icos cancel " << array << ")\n";
      return 0;
    }
    out << "job " << (*r)["id"].get<int64_t>() << " submitted\n";
    return 0;
  }
  if (parsed(c->jobs)) {
    std::string path = absl::StrCat("/api/v1/jobs?limit=", c->limit);
    if (c->before > 0) absl::StrAppend(&path, "&before=", c->before);
    if (c->state.empty() && !c->all_states) c->state = "Pending,Running";  // what is in the queue, as squeue
    if (!c->state.empty() && c->all_states)
      return fail(absl::InvalidArgumentError("--state and --all exclude each other"));
    for (const auto& [key, value] :
         {std::pair{"state", c->state}, {"user", c->user}, {"queue", c->queue}, {"name", c->job_name}}) {
      if (!value.empty()) absl::StrAppend(&path, "&", key, "=", httplib::detail::encode_query_param(value));
    }
    auto r = api.Json("GET", path);
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << absl::StrFormat("%-6s %-20s %-10s %-10s %-10s %-5s %s%s\n", "ID", "NAME", "USER", "QUEUE", "STATE", "AGE",
                           c->show_start ? "START      " : "", "REASON");
    for (const JobRow& j : JobRows((*r)["jobs"], c->expand_arrays)) {
      std::string start;
      if (c->show_start) {
        start = absl::StrFormat("%-10s ",
                                j.start_forecast.is_object() ? Until(j.start_forecast["p50_ms"]) : std::string("-"));
      }
      out << absl::StrFormat("%-6s %-20s %-10s %-10s %-10s %-5s %s%s\n", j.id, Clip(j.name, 20), j.user, j.queue,
                             j.state, Age(j.submit_ms), start, Clip(j.reason, 90));
    }
    if (r->contains("next_before")) {
      out << "(newest " << (*r)["jobs"].size() << " shown; older ones: icos jobs --before "
          << (*r)["next_before"].get<int64_t>() << ")\n";
    }
    return 0;
  }
  if (parsed(c->job)) {
    auto r = api.Json("GET", absl::StrCat("/api/v1/jobs/", c->job_id));
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    const json& j = *r;
    const json spec = j.value("spec", json::object());
    const std::string priority_class =
        spec.is_object() && spec.contains("priority_class") ? spec["priority_class"].get<std::string>() : "";
    out << absl::StrFormat("job %d  %s  user=%s queue=%s priority=%d%s attempt=%d\nstate: %s\n", j["id"].get<int64_t>(),
                           j["name"].get<std::string>(), j["user"].get<std::string>(), j["queue"].get<std::string>(),
                           j["priority"].get<int>(),
                           priority_class.empty() ? "" : absl::StrCat(" (class ", priority_class, ")"),
                           j["attempt"].get<int>(), j["state"].get<std::string>());
    if (!j["reason"].get<std::string>().empty()) out << "reason: " << j["reason"].get<std::string>() << "\n";
    if (const int64_t array = j.value("array_id", int64_t{0}); array != 0 && spec.is_object()) {
      out << "array: element " << j.value("array_index", -1) << " of " << array << " ("
          << spec.value("array", std::string()) << ")\n";
    }
    if (std::string deps = DependencyList(spec.is_object() ? spec.value("dependencies", json()) : json());
        !deps.empty()) {
      out << "depends on: " << deps << "\n";
    }
    if (const json& f = j.value("start_forecast", json()); f.is_object()) {
      out << "expected start: " << Until(f["p50_ms"]) << " (8 in 10 between " << Until(f["p10_ms"]) << " and "
          << Until(f["p90_ms"]) << "; forecast " << Age(f.value("made_ms", int64_t{0})) << " ago)\n";
    }
    const int64_t submit = j.value("submit_ms", int64_t{0}), start = j.value("start_ms", int64_t{0}),
                  end = j.value("end_ms", int64_t{0});
    out << "submitted " << Age(submit) << " ago";
    if (start > 0)
      out << ", waited " << Span((start - submit) / 1000) << ", ran "
          << Span(((end > 0 ? end : NowMs()) - start) / 1000);
    if (end > 0) out << ", ended " << Age(end) << " ago";
    out << "\n";
    if (const json& e = j.value("runtime_estimate", json()); e.is_object()) {
      const std::string source = e.value("source", "");
      out << "runtime estimate: " << Span(std::llround(e.value("seconds", 0.0))) << " ("
          << (source == "learned" ? "learned from similar finished jobs"
              : source == "user"  ? "given"
                                  : "time limit")
          << ")\n";
    }
    if (const json& u = j.value("device_use", json()); u.is_object()) {
      out << "device use: " << u.value("summary", "") << "\n";
    }
    // The checkpoint contract (docs/frameworks.md): what interruptions cost it.
    if (const int64_t ckpt = j.value("checkpoint_ms", int64_t{0}); ckpt > 0) {
      out << "last checkpoint: " << Age(ckpt) << " ago";
      if (const double save = j.value("checkpoint_save_s", 0.0); save > 0) {
        out << absl::StrFormat(" (after a stop's signal, a checkpoint took up to %.0f s)", save);
      }
      out << "\n";
    }
    if (const double lost = j.value("lost_device_s", 0.0); lost > 0) {
      out << absl::StrFormat("work lost to interruptions: %.2f device-hours\n", lost / 3600.0);
    }
    out << "\n"
        << absl::StrFormat("%-5s %-18s %-14s %-12s %-10s %-5s %-7s %s\n", "TASK", "ID", "NODE", "DEVICES", "STATE",
                           "EXIT", "MAXRSS", "REASON");
    int index = 0;
    int latest = 0;
    for (const auto& t : j["tasks"]) latest = std::max(latest, t["attempt"].get<int>());
    // Where a device's runtime numbers it otherwise than its node (a node
    // with several vendors), the number the task sees too: "6(ascend 2)".
    std::map<std::pair<std::string, int>, std::string> runtime_name;
    if (auto nodes = api.Json("GET", "/api/v1/nodes"); nodes.ok()) {
      for (const auto& n : (*nodes)["nodes"]) {
        int i = 0;
        for (const auto& d : n["node"]["devices"]) {
          const int runtime = d.value("runtime_index", -1);
          if (runtime >= 0 && runtime != i) {
            runtime_name[{n["name"].get<std::string>(), i}] =
                absl::StrCat("(", d.value("vendor", ""), " ", runtime, ")");
          }
          ++i;
        }
      }
    }
    for (const auto& t : j["tasks"]) {
      std::vector<std::string> devs;
      for (const auto& d : t["devices"]) {
        const int pct = d.value("percent", 100);
        const int device = d.value("device", 0);
        auto seen = runtime_name.find({t["node"].get<std::string>(), device});
        devs.push_back(absl::StrCat(device, seen == runtime_name.end() ? "" : seen->second,
                                    pct == 100 ? "" : absl::StrCat(":", pct, "%")));
      }
      const bool current = t["attempt"].get<int>() == latest;
      out << absl::StrFormat("%-5s %-18s %-14s %-12s %-10s %-5d %-7s %s\n", current ? std::to_string(index++) : "-",
                             t["task_id"].get<std::string>(), t["node"].get<std::string>(),
                             devs.empty() ? "-" : absl::StrJoin(devs, ","), t["state"].get<std::string>(),
                             t["exit_code"].get<int>(), Kib(t.value("max_rss_kib", int64_t{0})),
                             t["reason"].get<std::string>());
    }
    out << "\nEVENTS\n";
    for (const auto& e : j["events"]) {
      out << absl::StrFormat(
          "%-5s %-16s %s%s\n", Age(e["time_ms"].get<int64_t>()), e["kind"].get<std::string>(),
          e["node"].get<std::string>().empty() ? "" : absl::StrCat("[", e["node"].get<std::string>(), "] "),
          e["message"].get<std::string>());
    }
    return 0;
  }
  if (parsed(c->logs)) {
    // Following, a task that has not started yet is waited for.
    auto read = [&](int64_t from) {
      return ReadTaskLog(api, c->job_id, c->task, from, /*wait_for_start=*/c->follow, c->attempt);
    };
    int64_t offset = 0;
    if (c->tail_lines >= 0) {
      // The log's size (an offset past the end reads nothing and says where
      // it ends), then windows back from the end until they hold N lines.
      int64_t size = -1;
      while (size < 0) {
        auto probe = read(int64_t{1} << 62);
        if (!probe.ok()) return fail(probe.status());
        if (!probe->not_started) {
          size = probe->next;
        } else {
          std::this_thread::sleep_for(std::chrono::milliseconds(500));
        }
      }
      std::string text;
      for (int64_t window = 64 * 1024;; window *= 4) {
        const int64_t from = std::max<int64_t>(0, size - window);
        text.clear();
        for (int64_t at = from; at < size;) {
          auto k = read(at);
          if (!k.ok()) return fail(k.status());
          if (k->not_started || k->next <= at) break;
          text += k->text;
          at = k->next;
        }
        if (from == 0 || std::count(text.begin(), text.end(), '\n') > c->tail_lines) break;
      }
      out << LastLines(text, c->tail_lines) << std::flush;
      if (!c->follow) return 0;
      offset = size;
    }
    while (true) {
      auto k = read(offset);
      if (!k.ok()) return fail(k.status());
      if (k->not_started) {
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      out << k->text << std::flush;
      const bool moved = k->next > offset;
      offset = k->next;
      // Without --follow: to the end of what is there (in 1 MiB reads).
      if (!c->follow && (!moved || k->text.empty())) return 0;
      if (c->follow && k->finished && k->text.empty()) return 0;
      if (k->text.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  }
  if (int rc = RunJobControlCommand(control, api, as_json, out, err); rc >= 0) return rc;
  if (int rc = RunServiceCommand(c->services, api, as_json, out, err); rc >= 0) return rc;
  if (parsed(c->wait)) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      auto r = api.Json("GET", absl::StrCat("/api/v1/jobs/", c->job_id));
      const bool timed_out =
          c->timeout_s > 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(c->timeout_s);
      if (!r.ok() && r.status().code() == absl::StatusCode::kUnavailable && !timed_out) {
        // The server may be restarting; a wait outlives that.
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
        continue;
      }
      if (!r.ok()) return fail(r.status());
      const std::string state = (*r)["state"].get<std::string>();
      if (state == "Succeeded") {
        out << "job " << c->job_id << " succeeded\n";
        return 0;
      }
      if (state == "Failed" || state == "Cancelled") {
        out << "job " << c->job_id << " " << state << ": " << (*r)["reason"].get<std::string>() << "\n";
        return 2;
      }
      // Waiting would be forever on this cluster as it is: say so (it stays
      // queued, and runs should a node that fits it join).
      if (const std::string reason = (*r)["reason"].get<std::string>();
          state == "Pending" && absl::StartsWith(reason, "NeverFits")) {
        err << "icos: job " << c->job_id << " can never run on this cluster as it is: " << reason << "\n";
        return 2;
      } else if (state == "Pending" && absl::StartsWith(reason, "DependencyNeverSatisfied")) {
        err << "icos: job " << c->job_id << " can never start: " << reason << "\n";
        return 2;
      }
      if (c->timeout_s > 0 && std::chrono::steady_clock::now() - start > std::chrono::seconds(c->timeout_s)) {
        err << "icos: job " << c->job_id << " still " << state << " after " << c->timeout_s
            << " s: " << (*r)["reason"].get<std::string>() << "\n";
        return 4;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  if (parsed(c->nodes)) {
    auto r = api.Json("GET", "/api/v1/nodes");
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << absl::StrFormat("%-16s %-9s %-6s %-9s %-40s %-5s %s\n", "NAME", "STATE", "CPUS", "MEMORY", "DEVICES",
                           "TASKS", "REASON");
    for (const auto& n : (*r)["nodes"]) {
      std::map<std::string, int> types;
      for (const auto& d : n["node"]["devices"])
        ++types[absl::StrCat(d["vendor"].get<std::string>(), "/", d["model"].get<std::string>())];
      std::vector<std::string> devs;
      for (const auto& [t, k] : types) devs.push_back(absl::StrCat(k, "x", t));
      const std::string unhealthy = n.value("unhealthy_reason", ""), slow = n.value("slow_reason", "");
      const std::string reason = unhealthy.empty() ? slow : unhealthy;
      const std::string state = n["state"].get<std::string>() + (n.value("drained", false) ? ",Drained" : "") +
                                (unhealthy.empty() ? "" : ",Unhealthy") + (slow.empty() ? "" : ",Slow");
      out << absl::StrFormat("%-16s %-9s %-6g %-9s %-40s %-5d %s\n", n["name"].get<std::string>(), state,
                             n["node"]["cpu_milli"].get<int64_t>() / 1000.0,
                             absl::StrCat(n["node"]["memory_mib"].get<int64_t>() / 1024, "Gi"),
                             devs.empty() ? "-" : absl::StrJoin(devs, ","), n["tasks"].get<int>(),
                             reason.empty() ? "-" : reason);
    }
    return 0;
  }
  if (parsed(c->devices)) {
    auto r = api.Json("GET", "/api/v1/nodes");
    if (!r.ok()) return fail(r.status());
    json devices = json::array();
    for (const auto& n : (*r)["nodes"]) {
      if (!c->node_name.empty() && n["name"].get<std::string>() != c->node_name) continue;
      const json usage = n.value("usage", json::array());
      int index = 0;
      // What the node's state does to its devices: a NotReady node's, a
      // drained node's, and those of a node whose health check failed get no
      // new work, whatever each device says of itself.
      std::vector<std::string> node_flags;
      if (n.value("state", "Ready") != "Ready") node_flags.push_back(absl::StrCat("Node", n.value("state", "")));
      if (n.value("drained", false)) node_flags.push_back("NodeDrained");
      if (const std::string why = n.value("unhealthy_reason", ""); !why.empty()) {
        node_flags.push_back(absl::StrCat("NodeUnhealthy (", why, ")"));
      }
      for (json d : n["node"]["devices"]) {
        d["node"] = n["name"];
        d["node_flags"] = node_flags;
        if (index < static_cast<int>(usage.size())) {
          d["utilization_pct"] = usage[index].value("utilization_pct", -1);
          d["memory_used_mib"] = usage[index].value("memory_used_mib", int64_t{-1});
        }
        d["index"] = index++;
        devices.push_back(d);
      }
    }
    if (!c->node_name.empty() && devices.empty()) {
      bool known = false;
      for (const auto& n : (*r)["nodes"]) known |= n["name"].get<std::string>() == c->node_name;
      if (!known) return fail(absl::NotFoundError(absl::StrCat("no node '", c->node_name, "'")));
    }
    if (as_json) return Print(out, json{{"devices", devices}});
    // INDEX: the node's numbering (icos job, the map); RUNTIME: the vendor's
    // runtime's (what CUDA_VISIBLE_DEVICES / ASCEND_RT_VISIBLE_DEVICES name).
    out << absl::StrFormat("%-16s %-5s %-7s %-12s %-18s %-10s %-5s %-7s %-5s %s\n", "NODE", "INDEX", "RUNTIME",
                           "VENDOR", "MODEL", "MEMORY", "NUMA", "ISLAND", "UTIL", "HEALTH");
    for (const auto& d : devices) {
      std::vector<std::string> flags;
      if (!d.value("healthy", true)) flags.push_back("Unhealthy");
      if (d.value("drained", false)) flags.push_back("Drained");
      for (const auto& f : d["node_flags"]) flags.push_back(f.get<std::string>());
      const std::string health = flags.empty() ? "Healthy" : absl::StrJoin(flags, ",");
      const int util = d.value("utilization_pct", -1);  // -1: the agent has not said
      const int runtime = d.value("runtime_index", -1);
      out << absl::StrFormat("%-16s %-5d %-7s %-12s %-18s %-10s %-5d %-7d %-5s %s\n", d["node"].get<std::string>(),
                             d["index"].get<int>(), runtime < 0 ? "-" : absl::StrCat(runtime),
                             d["vendor"].get<std::string>(), d["model"].get<std::string>(),
                             absl::StrCat(d.value("memory_mib", int64_t{0}) / 1024, "Gi"), d.value("numa_node", 0),
                             d.value("island", -1), util < 0 ? "-" : absl::StrCat(util, "%"), health);
    }
    return 0;
  }
  if (parsed(c->node_drain) || parsed(c->node_resume)) {
    const bool drain = parsed(c->node_drain);
    const std::string target = c->device >= 0 ? absl::StrCat("/api/v1/nodes/", c->node_name, "/devices/", c->device)
                                              : absl::StrCat("/api/v1/nodes/", c->node_name);
    auto r = api.Json("POST", absl::StrCat(target, drain ? "/drain" : "/resume"), "{}");
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << "node " << c->node_name << (c->device >= 0 ? absl::StrCat(" device ", c->device) : "")
        << (drain ? " drained" : " resumed") << "\n";
    return 0;
  }
  if (parsed(c->summary)) {
    auto nodes = api.Json("GET", "/api/v1/nodes");
    if (!nodes.ok()) return fail(nodes.status());
    auto queues = api.Json("GET", "/api/v1/queues");
    if (!queues.ok()) return fail(queues.status());
    out << ClusterSummary(*nodes, *queues);
    return 0;
  }
  if (parsed(c->queues)) {
    auto r = api.Json("GET", "/api/v1/queues");
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << absl::StrFormat("%-14s %-10s %-6s %-8s %-8s %-30s %s\n", "NAME", "PARENT", "WEIGHT", "PENDING", "RUNNING",
                           "GUARANTEED", "LIMIT");
    for (const auto& q : (*r)["queues"]) {
      out << absl::StrFormat("%-14s %-10s %-6g %-8d %-8d %-30s %s\n", q["name"].get<std::string>(),
                             q["parent"].get<std::string>(), q["weight"].get<double>(), q["pending"].get<int64_t>(),
                             q["running"].get<int64_t>(), q["guaranteed"].dump(), q["limit"].dump());
    }
    return 0;
  }
  if (parsed(c->queue_put)) {
    auto text = ReadInput(c->file);
    if (!text.ok()) return fail(text.status());
    auto r = api.Json("PUT", "/api/v1/queues", *text);
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << "queue " << (*r)["name"].get<std::string>() << " saved\n";
    return 0;
  }
  if (parsed(c->usage)) {
    const int64_t now_s = absl::ToUnixSeconds(absl::Now());
    auto since = ParseTimeArg(c->since, now_s);
    if (!since.ok()) return fail(since.status());
    auto until = c->until.empty() ? absl::StatusOr<int64_t>(now_s + 1) : ParseTimeArg(c->until, now_s);
    if (!until.ok()) return fail(until.status());
    auto r = api.Json("GET", absl::StrCat("/api/v1/usage?since=", *since, "&until=", *until, "&by=", c->by));
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    auto when = [](int64_t s) {
      return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC", absl::FromUnixSeconds(s), absl::UTCTimeZone());
    };
    out << "usage from " << when(*since) << " to " << when(*until) << "\n";
    out << absl::StrFormat("%-16s %12s %10s %10s %6s %6s %6s %6s  %s\n", c->by == "user" ? "USER" : "QUEUE",
                           "DEVICE-HOURS", "LOST-HOURS", "CPU-HOURS", "SUBMIT", "OK", "FAILED", "CANCEL", "BY TYPE");
    for (const auto& row : (*r)["rows"]) {
      std::vector<std::string> types;
      for (const auto& [type, h] : row["device_hours"].items())
        types.push_back(absl::StrFormat("%s=%.2f", type, h.get<double>()));
      const json& jobs = row["jobs"];
      out << absl::StrFormat(
          "%-16s %12.2f %10.2f %10.2f %6d %6d %6d %6d  %s\n", Clip(row["key"].get<std::string>(), 16),
          row["device_hours_total"].get<double>(), row.value("device_hours_lost", 0.0), row["cpu_hours"].get<double>(),
          jobs["submitted"].get<int64_t>(), jobs["succeeded"].get<int64_t>(), jobs["failed"].get<int64_t>(),
          jobs["cancelled"].get<int64_t>(), types.empty() ? "-" : absl::StrJoin(types, " "));
    }
    return 0;
  }
  if (parsed(c->token_create)) {
    json body = {{"role", c->role}, {"user", c->user}, {"name", c->name}};
    if (c->uid >= 0) body["uid"] = c->uid;
    if (c->gid >= 0) body["gid"] = c->gid;
    if (!c->ttl.empty()) body["ttl"] = c->ttl;
    auto r = api.Json("POST", "/api/v1/tokens", body.dump());
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << (*r)["token"].get<std::string>() << "\n";
    return 0;
  }
  if (parsed(c->token_list)) {
    auto r = api.Json("GET", "/api/v1/tokens");
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << absl::StrFormat("%-12s %-24s %-6s %-12s %-11s %-8s %-8s %s\n", "ID", "NAME", "ROLE", "USER", "UID:GID",
                           "AGE", "USED", "STATE");
    const int64_t now = absl::ToUnixMillis(absl::Now());
    for (const auto& t : (*r)["tokens"]) {
      const int64_t expires = t.value("expires_ms", int64_t{0});
      std::string state = t.value("revoked", false)       ? "revoked"
                          : expires > 0 && expires <= now ? "expired"
                          : expires > 0                   ? absl::StrCat("expires in ", Span((expires - now) / 1000))
                                                          : "active";
      std::string ids =
          t.contains("uid") ? absl::StrCat(t["uid"].get<int64_t>(), ":", t.value("gid", int64_t{-1})) : "-";
      std::string user =
          t.value("node", "").empty() ? t.value("user", "") : absl::StrCat("node ", t["node"].get<std::string>());
      out << absl::StrFormat("%-12s %-24s %-6s %-12s %-11s %-8s %-8s %s\n", t.value("id", ""),
                             Clip(t.value("name", ""), 24), t.value("role", ""), Clip(user, 12), ids,
                             Age(t.value("created_ms", int64_t{0})), Age(t.value("last_used_ms", int64_t{0})), state);
    }
    return 0;
  }
  if (parsed(c->token_revoke)) {
    auto r = api.Json("POST", "/api/v1/tokens/revoke", json{{"token", c->which}}.dump());
    if (!r.ok()) return fail(r.status());
    if (as_json) return Print(out, *r);
    out << "revoked " << (*r)["id"].get<std::string>() << " (" << (*r)["name"].get<std::string>() << ")\n";
    return 0;
  }
  return -1;
}

}  // namespace icos::cli
