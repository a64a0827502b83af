#include "store/group_commit.h"

#include <algorithm>

namespace icos::store {

absl::Status GroupCommitQueue::Insert(JobRecord* job, CommitFn commit) {
  Pending self{.job = job};
  mu_.Lock();
  queue_.push_back(&self);
  while (true) {
    // Either a leader commits us, or the commit in flight ends with us still
    // queued and we lead the next one, taking everyone queued meanwhile (when
    // more than max_group_ wait, we may lead more than once).
    while (!self.done && committing_) cv_.Wait(&mu_);
    if (self.done) break;
    committing_ = true;
    const size_t take = std::min(queue_.size(), max_group_);
    std::vector<Pending*> group(queue_.begin(), queue_.begin() + take);
    queue_.erase(queue_.begin(), queue_.begin() + take);
    mu_.Unlock();

    std::vector<JobRecord*> jobs;
    jobs.reserve(group.size());
    for (const Pending* p : group) jobs.push_back(p->job);
    const absl::Status status = commit(jobs);

    mu_.Lock();
    for (Pending* p : group) {
      p->status = status;
      p->done = true;
    }
    committing_ = false;
    cv_.SignalAll();
  }
  absl::Status status = self.status;
  mu_.Unlock();
  return status;
}

}  // namespace icos::store
