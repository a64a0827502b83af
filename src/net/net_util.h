// Addresses and interfaces of this machine, as the agent and the CLI need
// them on a real cluster: which address a node advertises (the one its
// traffic to the controller leaves from), where it listens, which network
// interface holds that address (what NCCL_SOCKET_IFNAME and friends must
// name), and the expansion of the placeholders a controller puts into a
// task's environment for what only the node knows.
//
// Thread-safety: every function may be called from any thread.
#ifndef ICOS_NET_NET_UTIL_H_
#define ICOS_NET_NET_UTIL_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::net {

struct HostPort {
  std::string host;  // empty when the text gave only a port
  int port = 0;      // 0 when the text gave none
};

// Parses "HOST", "HOST:PORT", ":PORT", "[V6]", "[V6]:PORT" and a bare IPv6
// literal ("::", "fe80::1"); InvalidArgument with the expected forms otherwise
// (empty text, a port outside 1..65535, an unclosed bracket).
absl::StatusOr<HostPort> ParseHostPort(absl::string_view text);

// "0.0.0.0", "::" or "": listen on every address.
bool IsWildcardHost(absl::string_view host);
// 127.0.0.0/8, ::1 or "localhost": reachable from this machine only.
bool IsLoopbackHost(absl::string_view host);
// The host as it goes into a URL: IPv6 literals in brackets.
std::string UrlHost(absl::string_view host);
// The host of "http://HOST[:PORT][/...]" (brackets removed); "" if none.
// Of a comma-separated list, the first.
std::string HostOfUrl(absl::string_view url);

// A node's registration as a controller sees it: `address` (where tasks on
// other nodes reach it) and the host of `agent_url` (where the controller
// fetches its logs) must be reachable from other machines when the agent
// itself connected from another machine (`peer`, the connection's remote
// address). InvalidArgument, saying which flag to fix, for a loopback
// address or URL registered from a non-loopback peer; OK otherwise.
absl::Status CheckRegisteredReachable(const std::string& node, const std::string& address, const std::string& agent_url,
                                      const std::string& peer);

// One address of one local network interface.
struct InterfaceAddress {
  std::string name;  // "eth0"
  std::string ip;    // numeric, as inet_ntop writes it
};

// Every IPv4 and IPv6 address of this machine's interfaces (getifaddrs).
std::vector<InterfaceAddress> LocalInterfaceAddresses();

// The interface among `local` that holds `address`: a numeric IPv4/IPv6
// address in any form inet_pton accepts, or a host name, resolved (DNS may
// be asked). NotFound naming the address when no interface holds it.
absl::StatusOr<InterfaceAddress> InterfaceHolding(const std::string& address,
                                                  const std::vector<InterfaceAddress>& local);

// The local address that traffic to `host` (a name or an address) leaves
// from, by the routing table: a UDP socket's connect(), which sends nothing.
// Unavailable when no route leads there; NotFound when the name does not resolve.
absl::StatusOr<std::string> SourceAddressFor(const std::string& host);

// `env` with every placeholder (a key of `values`, e.g. "${ICOS_NODE_INTERFACE}")
// in its values replaced by the placeholder's value. A variable that uses a
// placeholder whose value is empty (unknown here) is left out, so that the
// library reading it falls back to its own default instead of reading a
// literal "${...}".
std::map<std::string, std::string> ExpandPlaceholders(const std::map<std::string, std::string>& env,
                                                      const std::map<std::string, std::string>& values);

}  // namespace icos::net

#endif  // ICOS_NET_NET_UTIL_H_
