#include "net/net_util.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace icos::net {
namespace {

absl::Status BadHostPort(absl::string_view text, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("'", text, "': ", why, "; expected HOST, HOST:PORT, :PORT, [IPV6] or [IPV6]:PORT"));
}

absl::StatusOr<int> ParsePort(absl::string_view text, absl::string_view port) {
  int p = 0;
  if (!absl::SimpleAtoi(port, &p) || p < 1 || p > 65535) return BadHostPort(text, "the port must be 1 to 65535");
  return p;
}

// The canonical text of a numeric address (IPv4-mapped IPv6 as IPv4); "" if `ip` is not numeric.
std::string Canonical(const std::string& ip) {
  char out[INET6_ADDRSTRLEN] = {};
  in_addr v4;
  if (inet_pton(AF_INET, ip.c_str(), &v4) == 1) return inet_ntop(AF_INET, &v4, out, sizeof(out));
  in6_addr v6;
  // A link-local address may carry its zone ("fe80::1%eth0"); the zone is not part of the address.
  const std::string bare = ip.substr(0, ip.find('%'));
  if (inet_pton(AF_INET6, bare.c_str(), &v6) != 1) return "";
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    std::memcpy(&v4, &v6.s6_addr[12], 4);
    return inet_ntop(AF_INET, &v4, out, sizeof(out));
  }
  return inet_ntop(AF_INET6, &v6, out, sizeof(out));
}

std::string Numeric(const sockaddr* sa) {
  char out[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET) {
    return inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, out, sizeof(out));
  }
  if (sa->sa_family == AF_INET6) {
    return inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, out, sizeof(out));
  }
  return "";
}

// The numeric addresses `host` stands for: itself if numeric, else what the resolver says.
std::vector<std::string> Resolve(const std::string& host) {
  if (std::string c = Canonical(host); !c.empty()) return {c};
  addrinfo hints = {};
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  std::vector<std::string> out;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0) return out;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (std::string ip = Canonical(Numeric(ai->ai_addr)); !ip.empty()) out.push_back(ip);
  }
  freeaddrinfo(res);
  return out;
}

}  // namespace

absl::StatusOr<HostPort> ParseHostPort(absl::string_view text) {
  if (text.empty()) return BadHostPort(text, "empty");
  HostPort hp;
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == absl::string_view::npos) return BadHostPort(text, "no closing ']'");
    hp.host = std::string(text.substr(1, close - 1));
    absl::string_view rest = text.substr(close + 1);
    if (rest.empty()) return hp;
    if (rest.front() != ':') return BadHostPort(text, "unexpected text after ']'");
    absl::StatusOr<int> port = ParsePort(text, rest.substr(1));
    if (!port.ok()) return port.status();
    hp.port = *port;
    return hp;
  }
  const size_t colon = text.find(':');
  if (colon == absl::string_view::npos) {
    hp.host = std::string(text);
    return hp;
  }
  if (text.find(':', colon + 1) != absl::string_view::npos) {  // a bare IPv6 literal: no port
    hp.host = std::string(text);
    return hp;
  }
  hp.host = std::string(text.substr(0, colon));
  absl::StatusOr<int> port = ParsePort(text, text.substr(colon + 1));
  if (!port.ok()) return port.status();
  hp.port = *port;
  return hp;
}

bool IsWildcardHost(absl::string_view host) { return host.empty() || host == "0.0.0.0" || host == "::"; }

bool IsLoopbackHost(absl::string_view host) {
  if (absl::EqualsIgnoreCase(host, "localhost")) return true;
  const std::string c = Canonical(std::string(host));
  return absl::StartsWith(c, "127.") || c == "::1";
}

std::string UrlHost(absl::string_view host) {
  return absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : std::string(host);
}

std::string HostOfUrl(absl::string_view url) {
  url = url.substr(0, url.find(','));
  if (const size_t scheme = url.find("://"); scheme != absl::string_view::npos) url = url.substr(scheme + 3);
  url = url.substr(0, url.find('/'));
  if (const size_t at = url.rfind('@'); at != absl::string_view::npos) url = url.substr(at + 1);
  if (!url.empty() && url.front() == '[') {
    const size_t close = url.find(']');
    return close == absl::string_view::npos ? "" : std::string(url.substr(1, close - 1));
  }
  return std::string(url.substr(0, url.find(':')));
}

absl::Status CheckRegisteredReachable(const std::string& node, const std::string& address, const std::string& agent_url,
                                      const std::string& peer) {
  if (peer.empty() || IsLoopbackHost(peer)) return absl::OkStatus();
  const std::string log_host = HostOfUrl(agent_url);
  const bool bad_address = IsLoopbackHost(address);
  const bool bad_logs = !log_host.empty() && IsLoopbackHost(log_host);
  if (!bad_address && !bad_logs) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "node '", node, "' connects from ", peer, " but registers ",
      bad_address ? absl::StrCat("address ", address) : absl::StrCat("its log server at ", agent_url),
      ", which only its own machine reaches: start its agent with --address set to an address other machines reach "
      "(or without --address, to use the one it connects from)",
      bad_address ? "" : " and --listen on it"));
}

std::vector<InterfaceAddress> LocalInterfaceAddresses() {
  std::vector<InterfaceAddress> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* ifa = list; ifa != nullptr; ifa = ifa->ifa_next) {
    if (ifa->ifa_addr == nullptr || ifa->ifa_name == nullptr) continue;
    if (ifa->ifa_addr->sa_family != AF_INET && ifa->ifa_addr->sa_family != AF_INET6) continue;
    out.push_back({ifa->ifa_name, Numeric(ifa->ifa_addr)});
  }
  freeifaddrs(list);
  return out;
}

absl::StatusOr<InterfaceAddress> InterfaceHolding(const std::string& address,
                                                  const std::vector<InterfaceAddress>& local) {
  for (const std::string& ip : Resolve(address)) {
    for (const InterfaceAddress& a : local) {
      if (Canonical(a.ip) == ip) return a;
    }
  }
  return absl::NotFoundError(absl::StrCat("no network interface of this machine holds ", address));
}

absl::StatusOr<std::string> SourceAddressFor(const std::string& host) {
  addrinfo hints = {};
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), "9", &hints, &res); rc != 0) {
    return absl::NotFoundError(absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::string error = "no address";
  std::string found;
  for (addrinfo* ai = res; ai != nullptr && found.empty(); ai = ai->ai_next) {
    const int fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    sockaddr_storage local = {};
    socklen_t len = sizeof(local);
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0) {
      found = Numeric(reinterpret_cast<sockaddr*>(&local));
    } else {
      error = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(res);
  if (found.empty()) return absl::UnavailableError(absl::StrCat("no route to ", host, ": ", error));
  return found;
}

std::map<std::string, std::string> ExpandPlaceholders(const std::map<std::string, std::string>& env,
                                                      const std::map<std::string, std::string>& values) {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : env) {
    std::string expanded = value;
    bool unknown = false;
    for (const auto& [placeholder, replacement] : values) {
      if (!absl::StrContains(expanded, placeholder)) continue;
      if (replacement.empty()) {
        unknown = true;
        break;
      }
      expanded = absl::StrReplaceAll(expanded, {{placeholder, replacement}});
    }
    if (!unknown) out[key] = std::move(expanded);
  }
  return out;
}

}  // namespace icos::net
