// Routes: method + path pattern -> handler, each with a bounded metrics
// label and the worker channel it runs on.
//
// A pattern is an ECMAScript regex matched against the whole decoded path;
// its groups become Request::matches. Literal paths (Exact, or Add with a
// pattern of only letters, digits and "/_-") are looked up in a hash map first; regex routes are tried in the order
// added, the first match wins. HEAD is served by the GET route (body dropped).
//
// Labels keep the metrics bounded whatever clients send: a route's label is
// its pattern with groups as placeholders ("/api/v1/jobs/(\d+)/logs" ->
// "/api/v1/jobs/:id/logs") unless given; the method label is one of a fixed
// set or "other"; a request no route matched is "unmatched".
//
// Thread-safety: add routes before the server starts; matching is then
// read-only and thread-safe.
#ifndef ICOS_NET_ROUTER_H_
#define ICOS_NET_ROUTER_H_

#include <functional>
#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "net/http.h"

namespace icos::net {

using Handler = std::function<void(const Request&, Response&)>;

struct RouteOptions {
  // Index into ServerOptions::channels: the worker pool the handler runs on.
  int channel = 0;
  // Run on the I/O thread instead of a pool: only for handlers that neither
  // block nor take long (static files, /healthz). They cannot be starved by
  // full queues and cost no hand-off.
  bool on_io_thread = false;
  // The metrics label; empty: derived from the pattern (RouteLabel).
  std::string label;
};

struct Route {
  std::string method;
  std::string pattern;
  std::string label;
  RouteOptions options;
  Handler handler;
};

class Router {
 public:
  // Adds a route. REQUIRES: `pattern` is a valid ECMAScript regex.
  void Add(std::string method, std::string pattern, Handler handler, RouteOptions options = {});
  // Adds a route for exactly `path` (no regex).
  void Exact(std::string method, std::string path, Handler handler, RouteOptions options = {});
  void Get(std::string pattern, Handler h, RouteOptions o = {}) { Add("GET", std::move(pattern), std::move(h), o); }
  void Post(std::string pattern, Handler h, RouteOptions o = {}) { Add("POST", std::move(pattern), std::move(h), o); }
  void Put(std::string pattern, Handler h, RouteOptions o = {}) { Add("PUT", std::move(pattern), std::move(h), o); }
  // Answers requests no route matched; runs on the I/O thread (keep it
  // trivial). Default: 404 with a JSON error.
  void SetNotFound(Handler handler) { not_found_ = std::move(handler); }
  const Handler& not_found() const { return not_found_; }

  // The route for `method` and `path`, with the pattern's groups in
  // `matches` ([0] the whole path); nullptr when none matches.
  const Route* Match(std::string_view method, const std::string& path, std::vector<std::string>* matches) const;

 private:
  std::unordered_map<std::string, std::unique_ptr<Route>> exact_;  // by method + ' ' + path
  struct RegexRoute {
    std::unique_ptr<Route> route;
    std::regex regex;
  };
  std::vector<RegexRoute> regex_;
  Handler not_found_;
};

// The metrics label for a route pattern: regex groups become placeholders,
// (\d+) -> :id, ([^/]+) -> :name, others :<group>, e.g.
// "/api/v1/nodes/([^/]+)/(drain|resume)" -> "/api/v1/nodes/:name/:drain|resume".
std::string RouteLabel(std::string_view pattern);

// The metrics label for a request method: the method itself when it is one
// of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS, else "other".
std::string_view MethodLabel(std::string_view method);

}  // namespace icos::net

#endif  // ICOS_NET_ROUTER_H_
