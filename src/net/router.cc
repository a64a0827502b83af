#include "net/router.h"

#include <utility>

namespace icos::net {
namespace {

// A pattern whose every character matches only itself, so that an exact
// lookup gives the same answer as the regex.
bool IsLiteral(std::string_view pattern) {
  for (const char c : pattern) {
    const bool plain =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '_' || c == '-';
    if (!plain) return false;
  }
  return true;
}

std::string ExactKey(std::string_view method, std::string_view path) {
  std::string key(method);
  key += ' ';
  key += path;
  return key;
}

}  // namespace

void Router::Add(std::string method, std::string pattern, Handler handler, RouteOptions options) {
  if (IsLiteral(pattern)) return Exact(std::move(method), std::move(pattern), std::move(handler), std::move(options));
  auto route = std::make_unique<Route>();
  route->label = options.label.empty() ? RouteLabel(pattern) : options.label;
  route->method = std::move(method);
  route->pattern = std::move(pattern);
  route->options = std::move(options);
  route->handler = std::move(handler);
  std::regex regex(route->pattern, std::regex::ECMAScript | std::regex::optimize);
  regex_.push_back({std::move(route), std::move(regex)});
}

void Router::Exact(std::string method, std::string path, Handler handler, RouteOptions options) {
  auto route = std::make_unique<Route>();
  route->label = options.label.empty() ? path : options.label;
  route->method = std::move(method);
  route->pattern = std::move(path);
  route->options = std::move(options);
  route->handler = std::move(handler);
  std::string key = ExactKey(route->method, route->pattern);
  exact_.try_emplace(std::move(key), std::move(route));  // the first added wins, as with regex routes
}

const Route* Router::Match(std::string_view method, const std::string& path, std::vector<std::string>* matches) const {
  const std::string_view as = method == "HEAD" ? std::string_view("GET") : method;
  matches->clear();
  if (auto it = exact_.find(ExactKey(as, path)); it != exact_.end()) {
    matches->push_back(path);
    return it->second.get();
  }
  for (const RegexRoute& r : regex_) {
    if (r.route->method != as) continue;
    std::smatch m;
    if (!std::regex_match(path, m, r.regex)) continue;
    for (const auto& group : m) matches->push_back(group.str());
    return r.route.get();
  }
  return nullptr;
}

std::string RouteLabel(std::string_view pattern) {
  std::string out;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] != '(') {
      out += pattern[i];
      continue;
    }
    const size_t close = pattern.find(')', i);
    if (close == std::string_view::npos) return std::string(pattern);
    const std::string_view group = pattern.substr(i + 1, close - i - 1);
    if (group == "\\d+") {
      out += ":id";
    } else if (group == "[^/]+") {
      out += ":name";
    } else {
      out += ':';
      out += group;
    }
    i = close;
  }
  return out;
}

std::string_view MethodLabel(std::string_view method) {
  static constexpr std::string_view kKnown[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
  for (const std::string_view m : kKnown) {
    if (m == method) return m;
  }
  return "other";
}

}  // namespace icos::net
