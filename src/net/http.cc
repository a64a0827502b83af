#include "net/http.h"

#include <cctype>
#include <cstdio>

#include "net/deferred_state.h"

namespace icos::net {

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  const size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    const int ca = std::tolower(static_cast<unsigned char>(a[i]));
    const int cb = std::tolower(static_cast<unsigned char>(b[i]));
    if (ca != cb) return ca < cb;
  }
  return a.size() < b.size();
}

bool Request::has_param(std::string_view name) const { return params.find(std::string(name)) != params.end(); }

std::string Request::param(std::string_view name) const {
  auto it = params.find(std::string(name));
  return it == params.end() ? "" : it->second;
}

std::string Request::header(std::string_view name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

void Response::SetHeader(std::string name, std::string value) {
  auto it = headers.find(name);
  if (it != headers.end()) {
    it->second = std::move(value);
  } else {
    headers.emplace(std::move(name), std::move(value));
  }
}

bool Response::BeginStream() {
  if (sink_ == nullptr || streaming_ || deferred_ != nullptr) return false;
  if (!sink_->Head(*this)) return false;
  streaming_ = true;
  return true;
}

bool Response::WriteChunk(std::string_view piece) {
  if (!streaming_ || stream_broken_) return false;
  if (piece.empty()) return true;  // an empty chunk would end the stream
  return sink_->Piece(piece);
}

Deferred Response::Defer(std::chrono::milliseconds timeout, std::function<void(Deferred)> on_timeout) {
  deferred_ = std::make_shared<DeferredState>();
  deferred_->timeout = timeout;
  deferred_->on_timeout = std::move(on_timeout);
  return Deferred(deferred_);
}

bool Deferred::Complete(Response response) const {
  if (state_ == nullptr) return false;
  std::function<void(Response)> deliver;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    if (state_->done) return false;
    state_->done = true;
    if (!state_->deliver) {
      state_->early = std::move(response);
      return true;
    }
    deliver = state_->deliver;
  }
  deliver(std::move(response));
  return true;
}

bool Deferred::open() const {
  if (state_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(state_->mu);
  return !state_->done;
}

std::string JsonError(std::string_view message, std::string_view code) {
  auto quote = [](std::string_view s) {
    std::string out = "\"";
    for (const char c : s) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof(buf), "\\u%04x", static_cast<unsigned char>(c));
            out += buf;
          } else {
            out += c;
          }
      }
    }
    return out + "\"";
  };
  // The same key order nlohmann::json writes ({"code", "error"}: sorted).
  return "{\"code\":" + quote(code) + ",\"error\":" + quote(message) + "}";
}

std::string PercentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else if (plus_is_space && s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

void ParseTarget(std::string_view target, std::string* path, std::multimap<std::string, std::string>* params) {
  const size_t q = target.find('?');
  *path = PercentDecode(target.substr(0, q), /*plus_is_space=*/false);
  if (q == std::string_view::npos) return;
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) continue;
    const size_t eq = pair.find('=');
    const std::string_view key = pair.substr(0, eq);
    const std::string_view value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    params->emplace(PercentDecode(key, true), PercentDecode(value, true));
  }
}

}  // namespace icos::net
