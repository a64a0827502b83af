// Agents' assignment watches (GET /api/v1/nodes/{name}/assignments?wait_ms=)
// answered without a thread each: a watch is a deferred response
// (net::Response::Defer) registered here under its node, and the
// Controller's assignment listener tells us which node's assignments moved.
// Ten thousand agents can each hold a watch; before, each held a server
// thread, so at most 32 could wait.
//
// Invariant: a watch is registered from before its first check against the
// controller until it is answered or its connection is gone, so a change
// between that check and the wait is never missed. The first answer wins
// (net::Deferred), whichever of change, timeout or error comes first.
//
// Thread-safety: thread-safe. Lock order: the controller's lock, then ours
// (the listener runs under the controller's); we never call the Controller
// with ours held.
#ifndef ICOS_CONTROLLER_ASSIGNMENT_WATCHES_H_
#define ICOS_CONTROLLER_ASSIGNMENT_WATCHES_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "controller/controller.h"
#include "net/http.h"

namespace icos::controller {

class AssignmentWatches {
 public:
  // The response to a watch: the node's assignments, or an error.
  using Reply = std::function<net::Response(const absl::StatusOr<Assignments>&)>;
  // Runs a task on a worker thread (the agent channel's pool).
  using Run = std::function<void(std::function<void()>)>;

  // `max_waiting`: watches waiting at once; Watch refuses more.
  AssignmentWatches(Controller* controller, size_t max_waiting, Reply reply, Run run);
  ~AssignmentWatches();  // Stop()

  // Subscribes to the controller's assignment changes.
  void Start();
  // Unsubscribes; watches still waiting are answered by their timeouts or
  // dropped with their connections.
  void Stop();

  // Makes `res` a deferred response answered when `node`'s assignments move
  // past `since` (at once if they already have), or after `wait` with the
  // node's assignments as they are then. False, leaving `res` untouched, when
  // max_waiting watches already wait (the caller answers at once instead).
  // REQUIRES: `who` may watch (an agent or admin), checked by the caller or
  // by the controller on the first check.
  bool Watch(const Principal& who, const std::string& node, uint64_t since, std::chrono::milliseconds wait,
             net::Response& res);

  size_t waiting() const;

 private:
  struct Waiter {
    Principal who;
    std::string node;
    uint64_t since = 0;
    net::Deferred deferred;
  };

  // The listener: `node` changed (controller's lock held).
  void Changed(const std::string& node);
  // Answers the watches of `node` that its current assignments settle.
  void CheckNode(const std::string& node);
  // Answers `w` if the controller's answer settles it.
  void Check(const std::shared_ptr<Waiter>& w);
  // At the timeout, or when the connection closed.
  void Expire(const std::shared_ptr<Waiter>& w, const net::Deferred& d);
  // Unregisters `w`; true if it was registered (the caller may answer it).
  bool Remove(const std::shared_ptr<Waiter>& w);

  Controller* const controller_;
  const size_t max_waiting_;
  const Reply reply_;
  const Run run_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<std::shared_ptr<Waiter>>> by_node_;
  std::unordered_set<std::string> checks_pending_;  // nodes with a CheckNode queued
  size_t waiting_ = 0;
  bool started_ = false;
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_ASSIGNMENT_WATCHES_H_
