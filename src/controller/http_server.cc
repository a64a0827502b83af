#include "controller/http_server.h"

#include <httplib.h>  // the client that fetches logs from agents

#include <chrono>
#include <cstdlib>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "absl/hash/hash.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "api/job_spec.h"
#include "controller/assignment_watches.h"
#include "controller/http_routes.h"
#include "controller/web_assets.h"
#include "net/net_util.h"
#include "net/router.h"

namespace icos::controller {

namespace {

using http::Fail;
using http::Reply;
using nlohmann::json;

const char* CodeName(absl::StatusCode c) {
  switch (c) {
    case absl::StatusCode::kInvalidArgument:
      return "InvalidArgument";
    case absl::StatusCode::kUnauthenticated:
      return "Unauthenticated";
    case absl::StatusCode::kPermissionDenied:
      return "PermissionDenied";
    case absl::StatusCode::kNotFound:
      return "NotFound";
    case absl::StatusCode::kFailedPrecondition:
      return "FailedPrecondition";
    case absl::StatusCode::kResourceExhausted:
      return "ResourceExhausted";
    case absl::StatusCode::kUnavailable:
      return "Unavailable";
    default:
      return "Internal";
  }
}

std::string Bearer(const net::Request& req) {
  const std::string h = req.header("Authorization");
  const std::string prefix = "Bearer ";
  return h.rfind(prefix, 0) == 0 ? h.substr(prefix.size()) : "";
}

json JobJson(const store::JobRecord& j) {
  return {{"id", j.id},
          {"name", j.name},
          {"user", j.user},
          {"queue", j.queue},
          {"priority", j.priority},
          {"state", store::JobStateName(j.state)},
          {"reason", j.reason},
          {"submit_ms", j.submit_ms},
          {"start_ms", j.start_ms},
          {"end_ms", j.end_ms},
          {"attempt", j.attempt},
          {"hold", j.hold},
          {"array_id", j.array_id},
          {"array_index", j.array_index},
          // The canonical spec names its kind only for services.
          {"kind", absl::StrContains(j.spec_json, R"("kind":"service")") ? "service" : "batch"},
          {"checkpoint_ms", j.checkpoint_ms},
          {"checkpoint_save_s", static_cast<double>(j.checkpoint_save_ms) / 1000.0},
          {"lost_device_s", static_cast<double>(j.lost_device_ms) / 1000.0}};
}

// A start-time forecast as the API shows it (docs/api.md): Unix ms; a
// quantile the forecast could not place within its horizon is null.
json ForecastJson(const core::StartForecast& f, int64_t made_ms) {
  auto at = [](int64_t ms) { return ms >= 0 ? json(ms) : json(); };
  return {{"p10_ms", at(f.p10_ms)},
          {"p50_ms", at(f.p50_ms)},
          {"p90_ms", at(f.p90_ms)},
          {"samples", f.samples},
          {"made_ms", made_ms}};
}

// A flag parameter: "true"/"1" set, absent or "false"/"0" not; anything else
// is an error naming it.
absl::StatusOr<bool> FlagParam(const net::Request& req, const char* name) {
  if (!req.has_param(name)) return false;
  const std::string v = req.param(name);
  if (v == "true" || v == "1" || v.empty()) return true;
  if (v == "false" || v == "0") return false;
  return absl::InvalidArgumentError(absl::StrCat("parameter ", name, " must be true or false, not '", v, "'"));
}

// One duration of an update body: "2h", "90m", or seconds as a number.
absl::StatusOr<std::optional<int64_t>> DurationField(const json& body, const char* name) {
  if (!body.contains(name)) return std::optional<int64_t>();
  const json& v = body[name];
  if (v.is_number_integer()) return std::optional<int64_t>(v.get<int64_t>());
  if (v.is_string()) {
    auto s = api::ParseDurationS(v.get<std::string>());
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(name, ": ", s.status().message()));
    return std::optional<int64_t>(*s);
  }
  return absl::InvalidArgumentError(absl::StrCat(name, " must be a duration such as \"2h\" or a number of seconds"));
}

json TaskJson(const store::TaskRecord& t) {
  json placement = json::parse(t.placement_json, nullptr, false);
  json devices = json::array();
  if (placement.is_object()) devices = placement.value("placement", json::object()).value("devices", json::array());
  return {{"task_id", wire::TaskId(t.job_id, t.group, t.replica, t.attempt)},
          {"group", t.group},
          {"replica", t.replica},
          {"attempt", t.attempt},
          {"node", t.node},
          {"devices", devices},
          {"state", store::TaskStateName(t.state)},
          {"exit_code", t.exit_code},
          {"reason", t.reason},
          {"start_ms", t.start_ms},
          {"end_ms", t.end_ms},
          {"max_rss_kib", t.max_rss_kib}};
}

// An integer query parameter that must parse when present.
absl::StatusOr<int64_t> StrictIntParam(const net::Request& req, const char* name, int64_t fallback) {
  if (!req.has_param(name)) return fallback;
  int64_t v = 0;
  if (!absl::SimpleAtoi(req.param(name), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " must be an integer (Unix seconds), got '", req.param(name), "'"));
  }
  return v;
}

// The device vendors a job's spec asks for (any task, any wish), sorted; empty
// when it names none. The dashboard filters the job list by it.
json SpecVendors(const std::string& spec_json) {
  std::set<std::string> vendors;
  json spec = json::parse(spec_json, nullptr, false);
  if (spec.is_object()) {
    for (const auto& t : spec.value("tasks", json::array())) {
      if (!t.is_object()) continue;
      for (const auto& w : t.value("devices", json::array())) {
        if (w.is_object() && w.contains("vendor") && w["vendor"].is_string()) {
          vendors.insert(w["vendor"].get<std::string>());
        }
      }
    }
  }
  return vendors;
}

// Per device, in node.devices order: {"utilization_pct", "memory_used_mib"},
// -1 where unknown; [] until the agent has reported.
json UsageJson(const std::vector<wire::DeviceUsage>& usage) {
  json out = json::array();
  for (const wire::DeviceUsage& u : usage) out.push_back(wire::DeviceUsageToJson(u));
  return out;
}

json AllocationsJson(const std::vector<DeviceAllocation>& allocations) {
  json out = json::array();
  for (const auto& a : allocations) {
    out.push_back({{"device", a.device},
                   {"job_id", a.job_id},
                   {"job_name", a.job_name},
                   {"user", a.user},
                   {"task_id", a.task_id},
                   {"percent", a.percent},
                   {"memory_mib", a.memory_mib}});
  }
  return out;
}

json AssignmentsJson(const Assignments& a) {
  json tasks = json::array();
  for (const auto& t : a.tasks) tasks.push_back(wire::AssignmentToJson(t));
  return {{"version", a.version}, {"tasks", tasks}};
}

// A waiting watch's answer (only authenticated callers wait).
net::Response WatchReply(const absl::StatusOr<Assignments>& a) {
  net::Response res;
  res.authenticated = true;
  if (!a.ok()) {
    Fail(res, a.status());
  } else {
    Reply(res, 200, AssignmentsJson(*a));
  }
  return res;
}

int64_t IntParam(const net::Request& req, const char* name, int64_t fallback) {
  int64_t v = fallback;
  if (req.has_param(name) && !absl::SimpleAtoi(req.param(name), &v)) return fallback;
  return v;
}

// A token as the API shows it: never the secret, nor the whole hash (its
// first 12 hex digits name it).
json TokenToJson(const store::TokenRecord& t) {
  json j = {{"id", t.token_hash.substr(0, 12)},
            {"name", t.name},
            {"role", t.role},
            {"user", t.user},
            {"created_ms", t.created_ms},
            {"expires_ms", t.expires_ms},
            {"last_used_ms", t.last_used_ms},
            {"revoked", t.revoked}};
  if (t.uid >= 0) j["uid"] = t.uid;
  if (t.gid >= 0) j["gid"] = t.gid;
  if (!t.node.empty()) j["node"] = t.node;
  return j;
}

// A token's lifetime from the API: "30d", "12h", "90" (seconds) or a number
// of seconds; positive.
absl::StatusOr<int64_t> TtlSeconds(const json& ttl) {
  absl::StatusOr<int64_t> s = absl::InvalidArgumentError("ttl: a duration such as \"30d\" or a number of seconds");
  if (ttl.is_string()) s = api::ParseDurationS(ttl.get<std::string>());
  if (ttl.is_number_integer()) s = ttl.get<int64_t>();
  if (s.ok() && *s <= 0) return absl::InvalidArgumentError("ttl must be positive");
  return s;
}

}  // namespace

std::string RouteLabel(const std::string& pattern) { return net::RouteLabel(pattern); }

int HttpStatusFor(const absl::Status& st) {
  switch (st.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAlreadyExists:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

RateLimiter::RateLimiter(double rate_per_s, double burst) : rate_(rate_per_s), burst_(burst) {}

bool RateLimiter::Allow(const std::string& key) {
  const double now = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> lock(mu_);
  if (buckets_.size() >= kMaxKeys && now >= next_sweep_) {
    // A bucket that has refilled is the same as none: forget those, so keys
    // that come and go (nodes) cannot grow the map without bound. At most
    // once a second: with that many live keys a sweep per call would make
    // every request walk the whole map.
    next_sweep_ = now + 1.0;
    for (auto it = buckets_.begin(); it != buckets_.end();) {
      it = (now - it->second.last) * rate_ + it->second.tokens >= burst_ ? buckets_.erase(it) : std::next(it);
    }
  }
  Bucket& b = buckets_[key];
  if (b.last == 0) b.tokens = burst_;
  b.tokens = std::min(burst_, b.tokens + (now - b.last) * rate_);
  b.last = now;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

size_t RateLimiter::keys() {
  std::lock_guard<std::mutex> lock(mu_);
  return buckets_.size();
}

// What a request's rate is limited by: its token, and for an agent token
// also the node the path names. Every node of a cluster may join with one
// shared agent token; each node's calls are then limited on their own, so a
// large cluster is not throttled as if it were one client.
std::string RateKey(const Principal& who, const std::string& path) {
  if (who.role != Role::kAgent) return who.name;
  constexpr absl::string_view kNodes = "/api/v1/nodes/";
  if (!absl::StartsWith(path, kNodes)) return who.name;
  const absl::string_view rest = absl::string_view(path).substr(kNodes.size());
  const size_t slash = rest.find('/');
  if (slash == absl::string_view::npos) return who.name;  // e.g. /api/v1/nodes/register
  return absl::StrCat(who.name, "@", rest.substr(0, slash));
}

HttpServer::HttpServer(Controller* controller, HttpServerOptions options)
    : controller_(controller), options_(std::move(options)) {
  if (options_.requests_per_s_per_token > 0) {
    limiter_ =
        std::make_unique<RateLimiter>(options_.requests_per_s_per_token, 2.0 * options_.requests_per_s_per_token);
  }
  watches_ =
      std::make_unique<AssignmentWatches>(controller_, static_cast<size_t>(std::max(1, options_.max_waiting_watches)),
                                          WatchReply, [this](std::function<void()> task) {
                                            if (server_) server_->Run(kAgent, std::move(task));
                                          });
}

HttpServer::~HttpServer() { Stop(); }

absl::Status HttpServer::Start() {
  if (server_) return absl::FailedPreconditionError("HTTP server already started");
  net::ServerOptions o;
  o.host = options_.host;
  o.port = options_.port;
  o.listen_backlog = options_.listen_backlog;
  o.io_threads = options_.io_threads;
  o.limits = options_.limits;
  o.tls_cert_file = options_.tls_cert_file;
  o.tls_key_file = options_.tls_key_file;
  o.channels = {{"user", options_.threads, options_.queue},
                {"agent", options_.agent_threads, options_.agent_queue},
                {"anonymous", options_.anonymous_threads, options_.anonymous_queue}};
  o.choose_channel = [this](const net::Request& req, const net::Route& route) {
    const std::string token = Bearer(req);
    if (token.empty()) return static_cast<int>(kAnonymous);
    std::lock_guard<std::mutex> lock(seen_mu_);
    return seen_tokens_.count(absl::Hash<std::string>{}(token)) > 0 ? route.options.channel
                                                                    : static_cast<int>(kAnonymous);
  };
  o.on_request = [this](const net::RequestRecord& r) {
    const std::string method(r.method), route(r.route);
    requests_.Inc({method, route, std::to_string(r.status)});
    latency_.Observe({method, route}, r.seconds);
  };
  server_ = std::make_unique<net::Server>(Routes(), std::move(o));
  if (absl::Status st = server_->Start(); !st.ok()) {
    server_.reset();
    return st;
  }
  watches_->Start();
  return absl::OkStatus();
}

void HttpServer::Stop() {
  if (watches_) watches_->Stop();  // before the server: no more checks are queued
  if (server_) server_->Stop();
}

int HttpServer::port() const { return server_ ? server_->port() : 0; }

void HttpServer::RenderServerMetrics(metrics::ExpositionWriter& w) const {
  if (!server_) return;
  const net::ServerStats s = server_->Stats();
  w.Family("icos_http_connections", "gauge", "Client connections open now.");
  w.Sample("icos_http_connections", {}, static_cast<double>(s.open));
  w.Family("icos_http_connections_accepted_total", "counter", "Client connections accepted.");
  w.Sample("icos_http_connections_accepted_total", {}, static_cast<double>(s.accepted));
  w.Family("icos_http_connections_evicted_total", "counter",
           "Idle or slow connections closed to make room under the per-address or total connection cap.");
  w.Sample("icos_http_connections_evicted_total", {}, static_cast<double>(s.evicted));
  w.Family("icos_http_connections_refused_total", "counter",
           "Connections closed at once: over a cap with every connection busy.");
  w.Sample("icos_http_connections_refused_total", {}, static_cast<double>(s.refused));
  w.Family("icos_http_connection_timeouts_total", "counter", "Connections closed because a deadline passed, by phase.");
  w.Sample("icos_http_connection_timeouts_total", {{"phase", "header"}}, static_cast<double>(s.header_timeouts));
  w.Sample("icos_http_connection_timeouts_total", {{"phase", "body"}}, static_cast<double>(s.body_timeouts));
  w.Sample("icos_http_connection_timeouts_total", {{"phase", "idle"}}, static_cast<double>(s.idle_timeouts));
  w.Sample("icos_http_connection_timeouts_total", {{"phase", "write"}}, static_cast<double>(s.write_timeouts));
  w.Family("icos_http_requests_rejected_total", "counter",
           "Requests answered 503 because their channel's queue was full.");
  for (const auto& c : s.channels) {
    w.Sample("icos_http_requests_rejected_total", {{"channel", c.name}}, static_cast<double>(c.rejected));
  }
  w.Family("icos_http_queued_requests", "gauge", "Requests waiting for a worker thread, by channel.");
  for (const auto& c : s.channels) {
    w.Sample("icos_http_queued_requests", {{"channel", c.name}}, static_cast<double>(c.queued));
  }
  w.Family("icos_http_waiting_watches", "gauge", "Assignment watches waiting for a change (no thread each).");
  w.Sample("icos_http_waiting_watches", {}, static_cast<double>(watches_ ? watches_->waiting() : 0));
}

namespace http {

void Reply(net::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.Set(body.dump(), "application/json");
}

void Fail(net::Response& res, const absl::Status& st) {
  Reply(res, HttpStatusFor(st), nlohmann::json{{"error", std::string(st.message())}, {"code", CodeName(st.code())}});
}

}  // namespace http

net::Router HttpServer::Routes() {
  net::Router s;
  Controller* c = controller_;
  const int64_t max_watch = options_.max_watch_ms;
  // Every authenticated route goes through this: 401 before anything else.
  RateLimiter* limiter = limiter_.get();
  auto authed = [this, c, limiter](auto handler) {
    return [this, c, limiter, handler](const net::Request& req, net::Response& res) {
      const std::string token = Bearer(req);
      auto who = c->Authenticate(token);
      if (!who.ok()) return Fail(res, who.status());
      res.authenticated = true;  // this connection is kept over unauthenticated ones under the caps
      {
        std::lock_guard<std::mutex> lock(seen_mu_);
        if (seen_tokens_.size() >= 65'536) seen_tokens_.clear();  // bounded; refilled by the next requests
        seen_tokens_.insert(absl::Hash<std::string>{}(token));
      }
      if (limiter != nullptr && !limiter->Allow(RateKey(*who, req.path))) {
        return Fail(res, absl::ResourceExhaustedError(
                             absl::StrCat("too many requests from token '", RateKey(*who, req.path), "': at most ",
                                          limiter->rate(), " per second; slow down and retry")));
      }
      try {
        handler(*who, req, res);
      } catch (const json::exception& e) {
        const bool authenticated = res.authenticated;
        res = net::Response();
        res.authenticated = authenticated;
        Fail(res, absl::InvalidArgumentError(absl::StrCat("malformed JSON body: ", e.what())));
      }
    };
  };
  const net::RouteOptions agent{.channel = kAgent};
  const net::RouteOptions inline_route{.on_io_thread = true};

  // The dashboard (web/, embedded at build time) at / and /assets/; route "static" in the metrics.
  RegisterWebAssets(s);

  s.Get(
      "/healthz", [](const net::Request&, net::Response& res) { res.Set("ok\n", "text/plain"); }, inline_route);

  // Who the token is: the dashboard signs in with it and shows what the role allows.
  s.Get("/api/v1/whoami", authed([](const Principal& who, const net::Request&, net::Response& res) {
          Reply(res, 200, {{"user", who.user}, {"role", RoleName(who.role)}, {"name", who.name}});
        }));

  s.Post("/api/v1/jobs", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           bool replayed = false;
           auto hold = FlagParam(req, "hold");
           if (!hold.ok()) return Fail(res, hold.status());
           // Slurm's --dependency text, added to the spec's own.
           auto deps = api::ParseDependencyList(req.param("dependency"));
           if (!deps.ok()) return Fail(res, deps.status());
           auto id = c->Submit(who, req.body,
                               SubmitOptions{.base_dir = req.header("X-Icos-Workdir"),
                                             .idempotency_key = req.header("Idempotency-Key"),
                                             .hold = *hold,
                                             .dependencies = *deps,
                                             .array = req.param("array")},
                               &replayed);
           if (!id.ok()) return Fail(res, id.status());
           // A retry with the key of a submission that was made: its job, once.
           if (replayed) res.SetHeader("Idempotent-Replayed", "true");
           json reply = {{"id", *id}, {"replayed", replayed}};
           // An array: its id (its first element's) and its indices, as the spec
           // has them. Looked up only when the request may have made one, so
           // a plain submission costs no extra reads.
           const bool may_be_array = !req.param("array").empty() || req.body.find("array") != std::string::npos ||
                                     req.body.find("service") != std::string::npos;
           if (auto job = may_be_array ? c->GetJob(who, *id) : absl::StatusOr<JobView>(absl::NotFoundError(""));
               job.ok() && job->job.array_id != 0) {
             const json spec = json::parse(job->job.spec_json, nullptr, false);
             if (spec.value("kind", "") == "service") {  // its replicas are elements, but it is no array
               reply["service_id"] = job->job.array_id;
               reply["replicas"] = spec.contains("service") ? spec["service"].value("replicas", 0) : 0;
             } else {
               reply["array_id"] = job->job.array_id;
               reply["array"] = spec.value("array", "");
             }
           }
           Reply(res, replayed ? 200 : 201, reply);
         }));

  s.Get("/api/v1/jobs", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          store::JobQuery q;
          if (req.has_param("state")) {  // one state or several, comma-separated
            for (absl::string_view name : absl::StrSplit(req.param("state"), ',', absl::SkipWhitespace())) {
              auto st = store::ParseJobState(std::string(absl::StripAsciiWhitespace(name)));
              if (!st) {
                return Fail(res,
                            absl::InvalidArgumentError(absl::StrCat(
                                "state '", name,
                                "' is not one of Pending, Running, Succeeded, Failed, Cancelled (comma-separated)")));
              }
              if (std::find(q.states.begin(), q.states.end(), *st) == q.states.end()) q.states.push_back(*st);
            }
          }
          q.user = req.param("user");
          q.queue = req.param("queue");
          q.name = req.param("name");
          q.array_id = IntParam(req, "array", 0);
          q.array_index = static_cast<int32_t>(std::clamp<int64_t>(IntParam(req, "index", -1), -1, 1LL << 30));
          // Newest first (what was just submitted is always on the first
          // page), paged backwards with `before`; `after` pages forwards in
          // ascending order instead (a client catching up on new jobs).
          q.after_id = IntParam(req, "after", 0);
          q.before_id = IntParam(req, "before", 0);
          q.newest_first = !req.has_param("after");
          q.limit = static_cast<int32_t>(std::clamp<int64_t>(IntParam(req, "limit", 500), 1, 10'000));
          auto jobs = c->ListJobs(who, q);
          if (!jobs.ok()) return Fail(res, jobs.status());
          json out = json::array();
          for (const auto& j : *jobs) {
            json row = JobJson(j);
            row["vendors"] = SpecVendors(j.spec_json);
            out.push_back(std::move(row));
          }
          // Pending jobs: when each should start (icos jobs --start).
          std::vector<int64_t> pending;
          for (const auto& j : *jobs) {
            if (j.state == store::JobState::kPending) pending.push_back(j.id);
          }
          if (!pending.empty()) {
            const auto forecasts = c->Forecasts(pending);
            const int64_t made = c->ForecastsMadeMs();
            for (json& row : out) {
              auto f = forecasts.find(row["id"].get<int64_t>());
              if (f != forecasts.end()) row["start_forecast"] = ForecastJson(f->second, made);
            }
          }
          json reply = {{"jobs", out}};
          // A full page: the cursor of the next one.
          if (!jobs->empty() && static_cast<int64_t>(jobs->size()) == q.limit) {
            reply[q.newest_first ? "next_before" : "next_after"] = jobs->back().id;
          }
          Reply(res, 200, reply);
        }));

  s.Get(R"(/api/v1/jobs/(\d+))", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          int64_t id = 0;
          if (!absl::SimpleAtoi(req.matches[1], &id)) return Fail(res, absl::InvalidArgumentError("bad job id"));
          auto v = c->GetJob(who, id);
          if (!v.ok()) return Fail(res, v.status());
          json tasks = json::array(), events = json::array();
          for (const auto& t : v->tasks) tasks.push_back(TaskJson(t));
          for (const auto& e : v->events) {
            events.push_back({{"time_ms", e.time_ms}, {"kind", e.kind}, {"node", e.node}, {"message", e.message}});
          }
          json j = JobJson(v->job);
          j["spec"] = json::parse(v->job.spec_json, nullptr, false);
          // null when unknown; source: user, learned or time_limit (docs/api.md).
          j["runtime_estimate"] =
              v->estimate.seconds > 0 ? json{{"seconds", v->estimate.seconds}, {"source", v->estimate.source}} : json();
          // While the job runs: how busy its devices were (an ended job has it as a DeviceUse event).
          const DeviceUse& use = v->device_use;
          j["device_use"] = use.samples > 0 ? json{{"busy_pct", use.BusyPct()},
                                                   {"samples", use.samples},
                                                   {"memory_peak_mib", use.memory_peak_mib},
                                                   {"memory_total_mib", use.memory_total_mib},
                                                   {"summary", use.Describe()}}
                                            : json();
          if (v->job.state == store::JobState::kPending) {
            auto f = c->Forecasts({id});
            if (!f.empty()) j["start_forecast"] = ForecastJson(f.begin()->second, c->ForecastsMadeMs());
          }
          j["tasks"] = tasks;
          j["events"] = events;
          Reply(res, 200, j);
        }));

  http::AddServiceRoutes(s, c, [authed](http::AuthedHandler h) -> net::Handler { return authed(std::move(h)); });

  s.Post(R"(/api/v1/jobs/(\d+)/cancel)", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           int64_t id = 0;
           if (!absl::SimpleAtoi(req.matches[1], &id)) return Fail(res, absl::InvalidArgumentError("bad job id"));
           if (absl::Status st = c->Cancel(who, id); !st.ok()) return Fail(res, st);
           Reply(res, 200, {{"id", id}, {"state", "Cancelled"}});
         }));

  // Control of queued work: hold / release a pending job, requeue a running
  // one (?hold=true: and hold it), update priority, time limit, estimate.
  for (const char* verb : {"hold", "release", "requeue"}) {
    const std::string what = verb;
    s.Post(absl::StrCat(R"(/api/v1/jobs/(\d+)/)", verb),
           authed([c, what](const Principal& who, const net::Request& req, net::Response& res) {
             int64_t id = 0;
             if (!absl::SimpleAtoi(req.matches[1], &id)) return Fail(res, absl::InvalidArgumentError("bad job id"));
             absl::Status st;
             if (what == "requeue") {
               auto hold = FlagParam(req, "hold");
               st = hold.ok() ? c->RequeueJob(who, id, *hold) : hold.status();
             } else {
               st = c->Hold(who, id, what == "hold");
             }
             if (!st.ok()) return Fail(res, st);
             Reply(res, 200, {{"id", id}, {"done", what}});
           }));
  }
  s.Add("PATCH", R"(/api/v1/jobs/(\d+))",
        authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          int64_t id = 0;
          if (!absl::SimpleAtoi(req.matches[1], &id)) return Fail(res, absl::InvalidArgumentError("bad job id"));
          json body = json::parse(req.body, nullptr, false);
          if (!body.is_object()) {
            return Fail(res, absl::InvalidArgumentError(
                                 "expected a JSON object such as {\"priority\": 5, \"time_limit\": \"2h\"}"));
          }
          for (const auto& [key, value] : body.items()) {
            if (key != "priority" && key != "time_limit" && key != "runtime_estimate") {
              return Fail(res, absl::InvalidArgumentError(absl::StrCat(
                                   "unknown field '", key, "'; known: priority, time_limit, runtime_estimate")));
            }
          }
          JobUpdate update;
          if (body.contains("priority")) {
            if (!body["priority"].is_number_integer()) {
              return Fail(res, absl::InvalidArgumentError("priority must be a whole number"));
            }
            const int64_t p = body["priority"].get<int64_t>();
            if (p < std::numeric_limits<int32_t>::min() || p > std::numeric_limits<int32_t>::max()) {
              return Fail(res, absl::InvalidArgumentError("priority is out of range"));
            }
            update.priority = static_cast<int32_t>(p);
          }
          auto limit = DurationField(body, "time_limit");
          if (!limit.ok()) return Fail(res, limit.status());
          auto estimate = DurationField(body, "runtime_estimate");
          if (!estimate.ok()) return Fail(res, estimate.status());
          update.time_limit_s = *limit;
          update.runtime_estimate_s = *estimate;
          if (absl::Status st = c->Update(who, id, update); !st.ok()) return Fail(res, st);
          auto v = c->GetJob(who, id);
          if (!v.ok()) return Fail(res, v.status());
          Reply(res, 200, JobJson(v->job));
        }));

  // Logs live on the agents; the controller fetches the requested range.
  s.Get(R"(/api/v1/jobs/(\d+)/logs)", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          int64_t id = 0;
          if (!absl::SimpleAtoi(req.matches[1], &id)) return Fail(res, absl::InvalidArgumentError("bad job id"));
          auto loc =
              c->LocateLog(who, id, static_cast<int32_t>(IntParam(req, "task", 0)),
                           static_cast<int32_t>(std::clamp<int64_t>(IntParam(req, "attempt", -1), -1, 1'000'000)));
          if (!loc.ok()) return Fail(res, loc.status());
          const int64_t offset = std::max<int64_t>(0, IntParam(req, "offset", 0));
          httplib::Client agent(loc->agent_url);
          agent.set_connection_timeout(5, 0);
          agent.set_read_timeout(10, 0);
          auto r = agent.Get(absl::StrCat("/v1/logs/", loc->task_id, "?offset=", offset).c_str(),
                             {{"Authorization", absl::StrCat("Bearer ", c->AgentLogKey(loc->agent_url))}});
          if (!r)
            return Fail(res, absl::UnavailableError(absl::StrCat("agent at ", loc->agent_url, " did not answer")));
          if (r->status == 404) {
            res.SetHeader("X-Icos-Offset", std::to_string(offset));
            res.SetHeader("X-Icos-Finished", loc->finished ? "1" : "0");
            res.status = 200;
            return;
          }
          if (r->status != 200)
            return Fail(res, absl::UnavailableError(absl::StrCat("agent answered HTTP ", r->status)));
          // The agent says where its read ended (an offset past the end is
          // clamped to it); an agent from before it did: offset + what came.
          int64_t next = offset + static_cast<int64_t>(r->body.size());
          if (r->has_header("X-Icos-Offset")) absl::SimpleAtoi(r->get_header_value("X-Icos-Offset"), &next);
          res.SetHeader("X-Icos-Offset", std::to_string(next));
          res.SetHeader("X-Icos-Finished", loc->finished && r->get_header_value("X-Icos-Eof") == "1" ? "1" : "0");
          res.Set(r->body, "text/plain");
        }));

  s.Get("/api/v1/nodes", authed([c](const Principal& who, const net::Request&, net::Response& res) {
          auto nodes = c->ListNodes(who);
          if (!nodes.ok()) return Fail(res, nodes.status());
          json out = json::array();
          for (const auto& n : *nodes) {
            out.push_back({{"name", n.record.name},
                           {"state", n.record.state},
                           {"drained", n.drained},
                           {"unhealthy_reason", n.unhealthy_reason},
                           {"slow_reason", n.slow_reason},
                           {"address", n.record.address},
                           {"heartbeat_ms", n.record.heartbeat_ms},
                           {"tasks", n.tasks},
                           {"node", wire::NodeToJson(n.node)},
                           {"allocations", AllocationsJson(n.allocations)},
                           {"usage", UsageJson(n.usage)}});
          }
          Reply(res, 200, {{"nodes", out}});
        }));

  s.Post("/api/v1/nodes/register", authed([this, c](const Principal& who, const net::Request& req, net::Response& res) {
           json body = json::parse(req.body);
           auto node = wire::NodeFromJson(body.at("node"));
           if (!node.ok()) return Fail(res, node.status());
           // A node on another machine that advertises loopback is unreachable there.
           if (absl::Status st = net::CheckRegisteredReachable(node->name, body.value("address", ""),
                                                               body.value("agent_url", ""), req.peer);
               !st.ok()) {
             return Fail(res, st);
           }
           auto credential = c->RegisterNode(who, *node, body.value("address", ""), body.value("agent_url", ""),
                                             body.value("log_key", ""), body.value("unhealthy_reason", ""));
           if (!credential.ok()) return Fail(res, credential.status());
           json out = {{"name", node->name}, {"cluster_id", c->cluster_id()}};
           // Only when a join token registered the node: its own credential, once.
           if (!credential->empty()) {
             out["credential"] = *credential;
             // Valid by construction: its first calls go to the agents' pool,
             // not the small one for tokens not yet seen (10,000 nodes joining
             // at once would otherwise fill that).
             std::lock_guard<std::mutex> lock(seen_mu_);
             seen_tokens_.insert(absl::Hash<std::string>{}(*credential));
           }
           Reply(res, 200, out);
         }),
         agent);

  s.Post(R"(/api/v1/nodes/([^/]+)/(drain|resume))",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           const bool drain = req.matches[2] == "drain";
           if (absl::Status st = c->DrainNode(who, req.matches[1], drain); !st.ok()) return Fail(res, st);
           Reply(res, 200, {{"name", req.matches[1]}, {"drained", drain}});
         }));

  s.Post(R"(/api/v1/nodes/([^/]+)/devices/(\d{1,9})/(drain|resume))",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           const bool drain = req.matches[3] == "drain";
           const int32_t device = std::stoi(req.matches[2]);  // \d{1,9}: always fits
           if (absl::Status st = c->DrainDevice(who, req.matches[1], device, drain); !st.ok()) {
             return Fail(res, st);
           }
           Reply(res, 200, {{"name", req.matches[1]}, {"device", device}, {"drained", drain}});
         }));

  s.Post(R"(/api/v1/nodes/([^/]+)/heartbeat)",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           json body = json::parse(req.body);
           std::vector<wire::TaskStatus> statuses;
           for (const auto& t : body.value("tasks", json::array())) {
             auto s = wire::TaskStatusFromJson(t);
             if (!s.ok()) return Fail(res, s.status());
             statuses.push_back(*s);
           }
           // Device figures are a side dish: a bad list is dropped, never the task
           // states that came with it (the controller would otherwise lose them).
           std::vector<wire::DeviceUsage> devices;  // older agents send none
           for (const auto& d : body.value("devices", json::array())) {
             auto u = wire::DeviceUsageFromJson(d);
             if (!u.ok()) {
               devices.clear();
               break;
             }
             devices.push_back(*u);
           }
           // The agent process and its count of beats (older agents send neither).
           if (body.contains("instance") && !body["instance"].is_string()) {
             return Fail(res, absl::InvalidArgumentError("instance must be a string"));
           }
           if (body.contains("seq") && !body["seq"].is_number_integer()) {
             return Fail(res, absl::InvalidArgumentError("seq must be an integer"));
           }
           auto reply = c->Heartbeat(who, req.matches[1], statuses, devices, body.value("instance", ""),
                                     body.value("seq", int64_t{0}));
           if (!reply.ok()) return Fail(res, reply.status());
           Reply(res, 200, wire::HeartbeatReplyToJson(*reply));
         }),
         agent);

  s.Post(R"(/api/v1/nodes/([^/]+)/ended-jobs)",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           json body = json::parse(req.body);
           const std::vector<int64_t> jobs = body.at("jobs").get<std::vector<int64_t>>();
           auto ended = c->EndedJobs(who, req.matches[1], jobs);
           if (!ended.ok()) return Fail(res, ended.status());
           json out = json::array();
           for (const auto& [id, end_ms] : *ended) out.push_back({{"id", id}, {"end_ms", end_ms}});
           Reply(res, 200, {{"ended", out}});
         }),
         agent);

  // A waiting watch is a deferred response (assignment_watches.h): it holds
  // a connection but no thread, so every agent of a large cluster can keep
  // one open. Past max_waiting_watches a watch answers at once and tells the
  // agent when to ask again (retry_ms: the agent pace, at least
  // watch_retry_ms); that agent then hears of new work within that time.
  const int64_t retry_ms = options_.watch_retry_ms;
  AssignmentWatches* watches = watches_.get();
  s.Get(R"(/api/v1/nodes/([^/]+)/assignments)",
        authed([c, watches, max_watch, retry_ms](const Principal& who, const net::Request& req, net::Response& res) {
          const int64_t wait = std::clamp<int64_t>(IntParam(req, "wait_ms", 0), 0, max_watch);
          const uint64_t since = static_cast<uint64_t>(IntParam(req, "since", 0));
          if (wait > 0 && watches->Watch(who, req.matches[1], since, std::chrono::milliseconds(wait), res)) return;
          auto a = c->WatchAssignments(who, req.matches[1], since, 0);
          if (!a.ok()) return Fail(res, a.status());
          json out = AssignmentsJson(*a);
          if (wait > 0) out["retry_ms"] = std::max(retry_ms, c->AgentPaceMs());  // no room to wait
          Reply(res, 200, out);
        }),
        agent);

  s.Get("/api/v1/queues", authed([c](const Principal& who, const net::Request&, net::Response& res) {
          auto queues = c->ListQueues(who);
          if (!queues.ok()) return Fail(res, queues.status());
          json out = json::array();
          for (const auto& q : *queues) {
            json j = wire::QueueToJson(q.queue);
            j["pending"] = q.pending;
            j["running"] = q.running;
            j["used"] = wire::AmountsToJson(q.used);
            out.push_back(j);
          }
          Reply(res, 200, {{"queues", out}});
        }));

  s.Put("/api/v1/queues", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          auto q = wire::QueueFromJson(json::parse(req.body));
          if (!q.ok()) return Fail(res, q.status());
          if (absl::Status st = c->PutQueue(who, *q); !st.ok()) return Fail(res, st);
          Reply(res, 200, wire::QueueToJson(*q));
        }));

  // Tokens (admin): create with an optional pinned Unix identity and
  // lifetime, list without secrets, revoke by id or name (docs/security.md).
  s.Post("/api/v1/tokens", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           json body = json::parse(req.body);
           const std::string role = body.value("role", "user");
           auto r = ParseRole(role);
           if (!r || *r == Role::kNode) {
             return Fail(res, absl::InvalidArgumentError("role must be admin, user, agent or gateway"));
           }
           TokenOptions options;
           options.uid = body.value("uid", int64_t{-1});
           options.gid = body.value("gid", int64_t{-1});
           if (body.contains("ttl")) {  // "90d", "12h", or seconds
             auto ttl_s = TtlSeconds(body["ttl"]);
             if (!ttl_s.ok()) return Fail(res, ttl_s.status());
             options.ttl_ms = *ttl_s * 1000;
           }
           auto secret = c->CreateToken(who, *r, body.value("user", ""), body.value("name", ""), options);
           if (!secret.ok()) return Fail(res, secret.status());
           Reply(res, 201, {{"token", *secret}, {"role", role}, {"user", body.value("user", "")}});
         }));
  s.Get("/api/v1/tokens", authed([c](const Principal& who, const net::Request&, net::Response& res) {
          auto tokens = c->ListTokens(who);
          if (!tokens.ok()) return Fail(res, tokens.status());
          json out = json::array();
          for (const auto& t : *tokens) out.push_back(TokenToJson(t));
          Reply(res, 200, {{"tokens", out}});
        }));
  s.Post("/api/v1/tokens/revoke", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           json body = json::parse(req.body);
           auto revoked = c->RevokeToken(who, body.value("token", ""));
           if (!revoked.ok()) return Fail(res, revoked.status());
           Reply(res, 200, TokenToJson(*revoked));
         }));
  // Prometheus scrape target (docs/metrics.md).
  const bool metrics_auth = options_.metrics_require_auth;
  s.Get("/metrics", [this, c, metrics_auth](const net::Request& req, net::Response& res) {
    if (metrics_auth) {
      if (auto who = c->Authenticate(Bearer(req)); !who.ok()) return Fail(res, who.status());
      res.authenticated = true;
    }
    auto m = c->CollectMetrics();
    if (!m.ok()) return Fail(res, m.status());
    metrics::ExpositionWriter w;
    RenderMetrics(*m, c->counters(), w);
    requests_.Render(w);
    latency_.Render(w);
    RenderServerMetrics(w);
    if (options_.extra_metrics) options_.extra_metrics(w);
    res.Set(w.text(), metrics::kContentType);
  });

  s.Get("/api/v1/utilisation", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          const int64_t now_s = c->NowMs() / 1000;
          auto until = StrictIntParam(req, "until", now_s + 1);
          if (!until.ok()) return Fail(res, until.status());
          auto since = StrictIntParam(req, "since", *until - 86'400);
          if (!since.ok()) return Fail(res, since.status());
          auto max_points = StrictIntParam(req, "max_points", 2'000);
          if (!max_points.ok()) return Fail(res, max_points.status());
          auto h = c->Utilisation(who, *since, *until);
          if (!h.ok()) return Fail(res, h.status());
          // Long windows are thinned to every k-th sample so a chart gets at most
          // max_points; step_s says the spacing of what is returned.
          const size_t n = h->samples.size();
          const size_t cap = static_cast<size_t>(std::max<int64_t>(1, *max_points));
          const size_t k = n > cap ? (n + cap - 1) / cap : 1;
          json samples = json::array();
          for (size_t i = 0; i < n; i += k) {
            json sample = json::parse(h->samples[i].sample_json, nullptr, false);
            if (!sample.is_object()) sample = json::object();
            sample["t"] = h->samples[i].time_s;
            samples.push_back(std::move(sample));
          }
          Reply(res, 200, {{"step_s", h->step_s * static_cast<int64_t>(k)}, {"samples", samples}});
        }));

  s.Get("/api/v1/usage", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          const int64_t now_s = c->NowMs() / 1000;
          auto until = StrictIntParam(req, "until", now_s + 1);
          if (!until.ok()) return Fail(res, until.status());
          auto since = StrictIntParam(req, "since", *until - 7 * 86'400);
          if (!since.ok()) return Fail(res, since.status());
          const std::string by_name = req.has_param("by") ? req.param("by") : "user";
          auto by = ParseUsageBy(by_name);
          if (!by)
            return Fail(res, absl::InvalidArgumentError(absl::StrCat("by must be user or queue, got '", by_name, "'")));
          constexpr int64_t kMaxSeconds = int64_t{1} << 40;  // keeps seconds -> milliseconds from overflowing
          if (std::abs(*since) > kMaxSeconds || std::abs(*until) > kMaxSeconds) {
            return Fail(res, absl::InvalidArgumentError("since and until must be Unix seconds"));
          }
          auto report = c->Usage(who, *since * 1000, *until * 1000, *by);
          if (!report.ok()) return Fail(res, report.status());
          json rows = json::array();
          for (const auto& r : report->rows) {
            rows.push_back({{"key", r.key},
                            {"device_hours", r.device_hours},
                            {"device_hours_total", r.device_hours_total},
                            {"device_hours_lost", r.device_hours_lost},
                            {"cpu_hours", r.cpu_hours},
                            {"jobs",
                             {{"submitted", r.submitted},
                              {"succeeded", r.succeeded},
                              {"failed", r.failed},
                              {"cancelled", r.cancelled}}}});
          }
          Reply(res, 200, {{"by", UsageByName(*by)}, {"since", *since}, {"until", *until}, {"rows", rows}});
        }));
  return s;
}

}  // namespace icos::controller
