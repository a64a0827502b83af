// Webhook URLs (job_spec.h, NotifySpec): what a spec or a queue may name,
// and which of them the cluster lets users send to.
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "api/job_spec.h"

namespace icos::api {
namespace {

constexpr size_t kMaxUrlBytes = 2'048;

absl::Status Bad(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("webhook URL: ", why, "; e.g. http://hooks.example:8080/icos"));
}

bool IsHostChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

}  // namespace

std::string WebhookUrl::Origin() const { return absl::StrCat(scheme, "://", host, ":", port); }

absl::StatusOr<WebhookUrl> ParseWebhookUrl(absl::string_view url) {
  if (url.size() > kMaxUrlBytes) return Bad(absl::StrCat("longer than ", kMaxUrlBytes, " characters"));
  for (char c : url) {
    // Commas too: the HTTP client reads a comma as a list of servers.
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == ',' || static_cast<unsigned char>(c) >= 0x80) {
      return Bad("spaces, commas, control and non-ASCII characters must be percent-encoded");
    }
  }
  WebhookUrl out;
  const size_t colon = url.find("://");
  if (colon == absl::string_view::npos) return Bad("no scheme");
  out.scheme = absl::AsciiStrToLower(url.substr(0, colon));
  if (out.scheme != "http" && out.scheme != "https") return Bad("only http:// and https:// are allowed");
  absl::string_view rest = url.substr(colon + 3);
  const size_t slash = rest.find_first_of("/?#");
  absl::string_view authority = rest.substr(0, slash);
  // Path and query, without a fragment (never sent), always from '/'.
  absl::string_view target = slash == absl::string_view::npos ? "" : rest.substr(slash);
  target = target.substr(0, target.find('#'));
  out.target = absl::StartsWith(target, "/") ? std::string(target) : absl::StrCat("/", target);
  if (absl::StrContains(authority, '@')) return Bad("a user or password in the URL would be shown with the job");
  absl::string_view host = authority, port;
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return Bad("an IPv6 address needs its closing ']'");
    host = authority.substr(0, close + 1);
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return Bad("unexpected text after the IPv6 address");
    if (!after.empty()) port = after.substr(1);
    for (char c : host.substr(1, host.size() - 2)) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.') return Bad("not an IPv6 address in '[...]'");
    }
  } else {
    const size_t p = authority.rfind(':');
    if (p != absl::string_view::npos) {
      host = authority.substr(0, p);
      port = authority.substr(p + 1);
    }
    for (char c : host) {
      if (!IsHostChar(c)) return Bad(absl::StrCat("'", host, "' is not a host name or address"));
    }
  }
  if (host.empty() || host == "[]") return Bad("no host");
  out.host = absl::AsciiStrToLower(host);
  out.port = out.scheme == "https" ? 443 : 80;
  if (!port.empty() && (!absl::SimpleAtoi(port, &out.port) || out.port < 1 || out.port > 65'535)) {
    return Bad(absl::StrCat("port '", port, "' is not 1 to 65535"));
  }
  return out;
}

bool WebhookAllowed(const WebhookUrl& url, const std::vector<std::string>& allow) {
  for (const std::string& raw : allow) {
    const std::string entry = absl::AsciiStrToLower(raw);
    if (entry == "*") return true;
    // "host:port" (an IPv6 address is bracketed: "[::1]:8080").
    absl::string_view host = entry;
    int32_t port = 0;
    if (const size_t p = entry.rfind(':'); p != std::string::npos && entry.find(']', p) == std::string::npos) {
      if (!absl::SimpleAtoi(absl::string_view(entry).substr(p + 1), &port)) continue;
      host = absl::string_view(entry).substr(0, p);
    }
    if (port != 0 && port != url.port) continue;
    if (absl::StartsWith(host, "*.")) {
      if (absl::EndsWith(url.host, host.substr(1))) return true;
    } else if (host == url.host) {
      return true;
    }
  }
  return false;
}

}  // namespace icos::api
