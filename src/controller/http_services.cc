// The services API (issue #22, docs/api.md): list, one service with its
// history, its endpoints, and update / scale / rollback.
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "controller/gateway_loads.h"
#include "controller/http_routes.h"

namespace icos::controller::http {
namespace {

using nlohmann::json;

// A service and its replicas (GET /api/v1/services[/{id}/endpoints]).
json ServiceJson(const ServiceEndpoints& e) {
  json replicas = json::array();
  int32_t ready = 0;
  for (const ServiceEndpoints::Replica& r : e.list) {
    ready += r.ready ? 1 : 0;
    replicas.push_back({{"replica", r.index},
                        {"job", r.job_id},
                        {"attempt", r.attempt},
                        {"state", r.state},
                        {"node", r.node},
                        {"address", r.address},
                        {"ready", r.ready},
                        {"current", r.current},
                        {"since_ms", r.since_ms},
                        {"reason", r.reason}});
  }
  return {{"id", e.id},
          {"name", e.name},
          {"user", e.user},
          {"replicas", e.replicas},
          {"revision", e.revision},
          {"rollout", e.rollout},
          {"ready", ready},
          {"endpoints", replicas}};
}

// A service's desired state and history (GET /api/v1/services/{id}).
json StateJson(const ServiceState& s) {
  json revisions = json::array();
  for (const ServiceRevision& r : s.revisions) {
    revisions.push_back({{"revision", r.number},
                         {"created_ms", r.created_ms},
                         {"created_by", r.created_by},
                         {"change", r.change},
                         {"outcome", r.outcome},
                         {"spec", json::parse(r.spec_json, nullptr, false)}});
  }
  return {{"id", s.id},
          {"name", s.name},
          {"user", s.user},
          {"replicas", s.replicas},
          {"revision", s.revision},
          {"stable_revision", s.stable},
          {"rollout", RolloutStatus(s)},
          {"revisions", revisions}};
}

absl::StatusOr<int64_t> IdOf(const net::Request& req) {
  int64_t id = 0;
  if (!absl::SimpleAtoi(req.matches[1], &id)) return absl::InvalidArgumentError("bad service id");
  return id;
}

// POST /api/v1/gateway/load's body: the gateway's instance id and its
// counts by service id.
absl::StatusOr<std::pair<std::string, std::map<int64_t, ServiceLoad>>> ParseGatewayLoad(const std::string& text) {
  const json body = json::parse(text, nullptr, false);
  auto bad = [](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("gateway load: ", why,
                                                   R"( (expected {"instance": ID, "services": [{"id": N, )",
                                                   R"("requests": N, "in_flight": N, "latency": [...]}]}))"));
  };
  if (!body.is_object() || !body.contains("instance") || !body["instance"].is_string() || !body.contains("services") ||
      !body["services"].is_array()) {
    return bad("not an object with instance and services");
  }
  std::string instance = body["instance"].get<std::string>();
  if (instance.empty() || instance.size() > 64) return bad("instance must be 1 to 64 characters");
  if (body["services"].size() > 10'000) return bad("more than 10,000 services");
  std::map<int64_t, ServiceLoad> loads;
  for (const json& e : body["services"]) {
    if (!e.is_object() || !e.contains("id") || !e["id"].is_number_integer() || !e.contains("requests") ||
        !e["requests"].is_number_unsigned() || !e.contains("in_flight") || !e["in_flight"].is_number_integer() ||
        !e.contains("latency") || !e["latency"].is_array()) {
      return bad("a service needs an integer id, requests, in_flight and a latency array");
    }
    ServiceLoad l;
    l.requests = e["requests"].get<uint64_t>();
    const int64_t in_flight = e["in_flight"].get<int64_t>();
    if (in_flight < 0 || in_flight > GatewayLoads::kMaxInFlight) return bad("in_flight out of range");
    l.in_flight = static_cast<int32_t>(in_flight);
    const json& latency = e["latency"];
    if (latency.size() != l.latency.size()) {
      return bad(absl::StrCat("latency must have ", l.latency.size(), " buckets"));
    }
    for (size_t i = 0; i < l.latency.size(); ++i) {
      if (!latency[i].is_number_unsigned()) return bad("latency counts must be unsigned integers");
      l.latency[i] = latency[i].get<uint64_t>();
    }
    loads[e["id"].get<int64_t>()] = l;
  }
  return std::make_pair(std::move(instance), std::move(loads));
}

}  // namespace

void AddServiceRoutes(net::Router& s, Controller* c, const Authed& authed) {
  s.Get("/api/v1/services", authed([c](const Principal& who, const net::Request&, net::Response& res) {
          auto list = c->ListServices(who);
          if (!list.ok()) return Fail(res, list.status());
          json services = json::array();
          for (const ServiceEndpoints& e : *list) services.push_back(ServiceJson(e));
          Reply(res, 200, {{"services", services}});
        }));

  s.Get(R"(/api/v1/services/(\d+)/endpoints)",
        authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          auto id = IdOf(req);
          if (!id.ok()) return Fail(res, id.status());
          auto e = c->Endpoints(who, *id);
          if (!e.ok()) return Fail(res, e.status());
          Reply(res, 200, ServiceJson(*e));
        }));

  // The dashboard's charts: request rate, in flight and latency percentiles
  // a point every step over the last hour, as the gateways measured them.
  s.Get(R"(/api/v1/services/(\d+)/traffic)",
        authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          auto id = IdOf(req);
          if (!id.ok()) return Fail(res, id.status());
          auto points = c->ServiceTrafficOf(who, *id);
          if (!points.ok()) return Fail(res, points.status());
          json out = json::array();
          for (const TrafficPoint& p : *points) {
            out.push_back({{"t_ms", p.t_ms},
                           {"rps", p.rps},
                           {"in_flight", p.in_flight},
                           {"p50_ms", p.p50_ms},
                           {"p90_ms", p.p90_ms},
                           {"p99_ms", p.p99_ms}});
          }
          Reply(res, 200, {{"step_ms", ServiceTraffic::kStepMs}, {"points", out}});
        }));

  s.Get(R"(/api/v1/services/(\d+))", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          auto id = IdOf(req);
          if (!id.ok()) return Fail(res, id.status());
          auto state = c->GetService(who, *id);
          if (!state.ok()) return Fail(res, state.status());
          Reply(res, 200, StateJson(*state));
        }));

  // The body is the new spec (YAML or JSON), as POST /api/v1/jobs takes.
  s.Post(R"(/api/v1/services/(\d+)/update)",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           auto id = IdOf(req);
           if (!id.ok()) return Fail(res, id.status());
           auto revision = c->UpdateService(who, *id, req.body, req.header("X-Icos-Workdir"));
           if (!revision.ok()) return Fail(res, revision.status());
           Reply(res, 200, {{"id", *id}, {"revision", *revision}});
         }));

  s.Post(R"(/api/v1/services/(\d+)/scale)",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           auto id = IdOf(req);
           if (!id.ok()) return Fail(res, id.status());
           const json body = json::parse(req.body);
           if (!body.is_object() || !body.contains("replicas") || !body["replicas"].is_number_integer()) {
             return Fail(res, absl::InvalidArgumentError(R"(the body must be {"replicas": N})"));
           }
           const int64_t n = body["replicas"].get<int64_t>();
           if (n < 0 || n > 1'000'000) return Fail(res, absl::InvalidArgumentError("replicas out of range"));
           if (absl::Status st = c->ScaleService(who, *id, static_cast<int32_t>(n)); !st.ok()) return Fail(res, st);
           Reply(res, 200, {{"id", *id}, {"replicas", n}});
         }));

  // A standalone gateway's view (role gateway, docs/services.md): where a
  // service's requests go, by its id or name.
  s.Get(R"(/api/v1/routes/([A-Za-z0-9._-]{1,128}))",
        authed([c](const Principal& who, const net::Request& req, net::Response& res) {
          auto route = c->Route(who, req.matches[1]);
          if (!route.ok()) return Fail(res, route.status());
          Reply(res, 200, {{"id", route->id}, {"ready", route->ready}, {"cold_start_ms", route->cold_start_ms}});
        }));

  // ... and what it forwarded: {"instance": ID, "services": [{"id", "requests",
  // "in_flight", "latency": [answers per kLatencyBoundsMs bucket]}]}, its
  // counts since it started.
  s.Post("/api/v1/gateway/load", authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           auto loads = ParseGatewayLoad(req.body);
           if (!loads.ok()) return Fail(res, loads.status());
           if (absl::Status st = c->ReportGatewayLoad(who, loads->first, loads->second); !st.ok()) {
             return Fail(res, st);
           }
           Reply(res, 200, {{"services", loads->second.size()}});
         }));

  // No body: kubectl rollout pause / resume.
  for (const bool pause : {true, false}) {
    s.Post(pause ? R"(/api/v1/services/(\d+)/pause)" : R"(/api/v1/services/(\d+)/resume)",
           authed([c, pause](const Principal& who, const net::Request& req, net::Response& res) {
             auto id = IdOf(req);
             if (!id.ok()) return Fail(res, id.status());
             if (absl::Status st = c->PauseService(who, *id, pause); !st.ok()) return Fail(res, st);
             Reply(res, 200, {{"id", *id}, {"paused", pause}});
           }));
  }

  // Body {"revision": N}, or empty: the last revision that rolled out.
  s.Post(R"(/api/v1/services/(\d+)/rollback)",
         authed([c](const Principal& who, const net::Request& req, net::Response& res) {
           auto id = IdOf(req);
           if (!id.ok()) return Fail(res, id.status());
           int64_t to = 0;
           if (!req.body.empty()) {
             const json body = json::parse(req.body);
             if (!body.is_object() || (body.contains("revision") && !body["revision"].is_number_integer())) {
               return Fail(res, absl::InvalidArgumentError(R"(the body must be {"revision": N} or empty)"));
             }
             to = body.value("revision", int64_t{0});
             if (to < 0 || to > 1'000'000'000) return Fail(res, absl::InvalidArgumentError("revision out of range"));
           }
           auto revision = c->RollbackService(who, *id, static_cast<int32_t>(to));
           if (!revision.ok()) return Fail(res, revision.status());
           Reply(res, 200, {{"id", *id}, {"revision", *revision}});
         }));
}

}  // namespace icos::controller::http
