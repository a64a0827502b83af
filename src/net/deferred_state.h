// What a deferred response (http.h: Response::Defer) shares between the
// handler's Deferred handles and the connection that will send it. Internal to
// icos_net: handlers use Deferred.
#ifndef ICOS_NET_DEFERRED_STATE_H_
#define ICOS_NET_DEFERRED_STATE_H_

#include <chrono>
#include <functional>
#include <mutex>
#include <optional>

#include "net/http.h"

namespace icos::net {

struct DeferredState {
  std::chrono::milliseconds timeout{0};
  std::function<void(Deferred)> on_timeout;

  std::mutex mu;
  // Answered, or no longer answerable (connection closed, server stopped).
  // Once true it stays true: the first Complete wins.
  bool done = false;
  // A response completed before the connection took the handle over (the
  // handler answered its own deferral at once).
  std::optional<Response> early;
  // Set by the connection once it waits: hands a response to it (posts onto
  // its executor). Empty before that and after the connection closed.
  std::function<void(Response)> deliver;

  // Marks the state done without an answer; true if it was open (the caller
  // then owes on_timeout a call). The connection calls it when it closes.
  bool Abandon() {
    std::lock_guard<std::mutex> lock(mu);
    if (done) return false;
    done = true;
    deliver = nullptr;
    return true;
  }
};

}  // namespace icos::net

#endif  // ICOS_NET_DEFERRED_STATE_H_
