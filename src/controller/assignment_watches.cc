#include "controller/assignment_watches.h"

#include <algorithm>

namespace icos::controller {

AssignmentWatches::AssignmentWatches(Controller* controller, size_t max_waiting, Reply reply, Run run)
    : controller_(controller), max_waiting_(max_waiting), reply_(std::move(reply)), run_(std::move(run)) {}

AssignmentWatches::~AssignmentWatches() { Stop(); }

void AssignmentWatches::Start() {
  started_ = true;
  controller_->SetAssignmentListener([this](const std::string& node) { Changed(node); });
}

void AssignmentWatches::Stop() {
  if (!started_) return;
  started_ = false;
  controller_->SetAssignmentListener(nullptr);
}

bool AssignmentWatches::Watch(const Principal& who, const std::string& node, uint64_t since,
                              std::chrono::milliseconds wait, net::Response& res) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiting_ >= max_waiting_) return false;
    ++waiting_;  // reserved now, registered below
  }
  auto w = std::make_shared<Waiter>();
  w->who = who;
  w->node = node;
  w->since = since;
  w->deferred = res.Defer(wait, [this, w](net::Deferred d) { Expire(w, d); });
  {
    // Registered before the first check: a change from here on finds it.
    std::lock_guard<std::mutex> lock(mu_);
    by_node_[node].push_back(w);
  }
  Check(w);
  return true;
}

size_t AssignmentWatches::waiting() const {
  std::lock_guard<std::mutex> lock(mu_);
  return waiting_;
}

void AssignmentWatches::Changed(const std::string& node) {
  std::lock_guard<std::mutex> lock(mu_);
  if (by_node_.find(node) == by_node_.end()) return;
  // One check per node however many changes come before it runs (a pass
  // touches a node once per task it places there).
  if (!checks_pending_.insert(node).second) return;
  run_([this, node] { CheckNode(node); });
}

void AssignmentWatches::CheckNode(const std::string& node) {
  std::vector<std::shared_ptr<Waiter>> waiters;
  {
    std::lock_guard<std::mutex> lock(mu_);
    checks_pending_.erase(node);  // a change after this point queues another check
    auto it = by_node_.find(node);
    if (it == by_node_.end()) return;
    waiters = it->second;
  }
  // Every waiter may watch this node (its first check passed); one answer serves all.
  const absl::StatusOr<Assignments> a = controller_->WatchAssignments(waiters.front()->who, node, 0, 0);
  for (const auto& w : waiters) {
    if ((!a.ok() || a->version != w->since) && Remove(w)) w->deferred.Complete(reply_(a));
  }
}

void AssignmentWatches::Check(const std::shared_ptr<Waiter>& w) {
  const absl::StatusOr<Assignments> a = controller_->WatchAssignments(w->who, w->node, w->since, 0);
  if ((!a.ok() || a->version != w->since) && Remove(w)) w->deferred.Complete(reply_(a));
}

void AssignmentWatches::Expire(const std::shared_ptr<Waiter>& w, const net::Deferred& d) {
  if (!Remove(w) || !d.open()) return;  // answered already, or the agent left
  d.Complete(reply_(controller_->WatchAssignments(w->who, w->node, w->since, 0)));
}

bool AssignmentWatches::Remove(const std::shared_ptr<Waiter>& w) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = by_node_.find(w->node);
  if (it == by_node_.end()) return false;
  auto& list = it->second;
  auto pos = std::find(list.begin(), list.end(), w);
  if (pos == list.end()) return false;
  *pos = std::move(list.back());
  list.pop_back();
  if (list.empty()) by_node_.erase(it);
  --waiting_;
  return true;
}

}  // namespace icos::controller
