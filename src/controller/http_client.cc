#include "controller/http_client.h"

#include <httplib.h>

#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace icos {

ApiClient::ApiClient(const std::string& base_url, std::string token, int64_t timeout_ms, bool keep_alive)
    : token_(std::move(token)), timeout_ms_(timeout_ms), keep_alive_(keep_alive) {
  for (absl::string_view url : absl::StrSplit(base_url, ',', absl::SkipWhitespace())) {
    urls_.emplace_back(absl::StripAsciiWhitespace(url));
  }
  if (urls_.empty()) urls_.push_back(base_url);  // httplib reports the bad URL at the first request
  Connect(0);
}

ApiClient::~ApiClient() = default;

void ApiClient::Connect(size_t index) {
  current_ = index;
  client_ = std::make_unique<httplib::Client>(urls_[index]);
  client_->set_connection_timeout(std::chrono::milliseconds(std::min<int64_t>(timeout_ms_, 5'000)));
  client_->set_read_timeout(std::chrono::milliseconds(timeout_ms_));
  client_->set_write_timeout(std::chrono::milliseconds(timeout_ms_));
  client_->set_keep_alive(keep_alive_);
  client_->set_tcp_nodelay(true);
}

absl::StatusOr<HttpReply> ApiClient::Request(const std::string& method, const std::string& path,
                                             const std::string& body, const std::string& content_type,
                                             const std::map<std::string, std::string>& extra) {
  if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE") {
    return absl::InvalidArgumentError(absl::StrCat("unsupported method ", method));
  }
  httplib::Headers headers(extra.begin(), extra.end());
  if (!token_.empty()) headers.emplace("Authorization", absl::StrCat("Bearer ", token_));
  // Sending it twice does no harm: the server answers a repeat with the first result.
  const bool repeatable = method == "GET" || extra.count("Idempotency-Key") > 0;
  auto send = [&]() -> httplib::Result {
    if (method == "GET") return client_->Get(path.c_str(), headers);
    if (method == "POST") return client_->Post(path.c_str(), headers, body, content_type.c_str());
    if (method == "PUT") return client_->Put(path.c_str(), headers, body, content_type.c_str());
    return client_->Delete(path.c_str(), headers);
  };
  // One pass over the controllers, starting at the one in use.
  auto attempt = [&]() -> absl::StatusOr<HttpReply> {
    httplib::Result r = send();
    std::vector<std::string> failures;
    for (size_t tried = 1; !r && tried < urls_.size(); ++tried) {
      // A connect that timed out never connected either: on a real network a
      // controller whose machine is gone does not refuse, it never answers.
      const bool never_connected =
          r.error() == httplib::Error::Connection || r.error() == httplib::Error::ConnectionTimeout;
      if (!repeatable && !never_connected) break;
      failures.push_back(absl::StrCat(urls_[current_], ": ", httplib::to_string(r.error())));
      Connect((current_ + 1) % urls_.size());
      r = send();
    }
    if (!r) {
      failures.push_back(absl::StrCat(urls_[current_], ": ", httplib::to_string(r.error())));
      return absl::UnavailableError(absl::StrCat("cannot reach ", absl::StrJoin(failures, "; "),
                                                 " (is the icos server running? `icos up` starts one)"));
    }
    HttpReply out;
    out.status = r->status;
    out.body = r->body;
    for (const auto& [k, v] : r->headers) out.headers[k] = v;
    return out;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(retry_ms_);
  int64_t backoff_ms = 100;
  while (true) {
    absl::StatusOr<HttpReply> reply = attempt();
    const bool transient = !reply.ok() || reply->status == 503;
    if (!transient || !repeatable || retry_ms_ <= 0 ||
        std::chrono::steady_clock::now() + std::chrono::milliseconds(backoff_ms) > deadline) {
      return reply;
    }
    if (on_retry_)
      on_retry_(reply.ok() ? absl::UnavailableError(absl::StrCat(base_url(), " answered 503")) : reply.status());
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min<int64_t>(backoff_ms * 2, 2'000);
    Connect(current_);  // a fresh connection: the old one may be half-dead
  }
}

std::string NewIdempotencyKey() {
  std::random_device entropy;  // the kernel's random source
  std::string out;
  static const char* kHex = "0123456789abcdef";
  for (int i = 0; i < 4; ++i) {
    uint32_t word = entropy();
    for (int b = 0; b < 8; ++b, word >>= 4) out.push_back(kHex[word & 15]);
  }
  return out;
}

absl::Status StatusFromHttp(int status, const std::string& message) {
  switch (status) {
    case 400:
    case 413:
      return absl::InvalidArgumentError(message);
    case 401:
      return absl::UnauthenticatedError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::FailedPreconditionError(message);
    case 429:
      return absl::ResourceExhaustedError(message);
    case 503:
      return absl::UnavailableError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::StatusOr<nlohmann::json> ApiClient::Json(const std::string& method, const std::string& path,
                                               const std::string& body, const std::string& content_type,
                                               const std::map<std::string, std::string>& headers) {
  auto r = Request(method, path, body, content_type, headers);
  if (!r.ok()) return r.status();
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status >= 200 && r->status < 300) {
    if (j.is_discarded()) return absl::InternalError(absl::StrCat("server sent non-JSON: ", r->body.substr(0, 200)));
    return j;
  }
  std::string msg = j.is_object() ? j.value("error", r->body) : r->body;
  return StatusFromHttp(r->status, msg);
}

}  // namespace icos
