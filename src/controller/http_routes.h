// What the REST API's route files share (http_server.cc registers the
// routes; a capability with many routes has a file of its own).
#ifndef ICOS_CONTROLLER_HTTP_ROUTES_H_
#define ICOS_CONTROLLER_HTTP_ROUTES_H_

#include <functional>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "controller/controller.h"
#include "net/router.h"

namespace icos::controller::http {

// A route's work once its caller is known.
using AuthedHandler = std::function<void(const Principal&, const net::Request&, net::Response&)>;
// Wraps a handler in authentication and the per-token rate limit.
using Authed = std::function<net::Handler(AuthedHandler)>;

void Reply(net::Response& res, int status, const nlohmann::json& body);
// The status as {"error": ..., "code": ...} with its HTTP status.
void Fail(net::Response& res, const absl::Status& st);

// GET /api/v1/services, /services/{id}, /services/{id}/endpoints;
// POST /services/{id}/update, /scale, /rollback (http_services.cc).
void AddServiceRoutes(net::Router& s, Controller* c, const Authed& authed);

}  // namespace icos::controller::http

#endif  // ICOS_CONTROLLER_HTTP_ROUTES_H_
