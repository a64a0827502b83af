#include "store/group_commit.h"

#include <algorithm>

namespace icos::store {

absl::Status GroupCommitQueue::Insert(JobRecord* job, CommitFn commit) { return InsertAll({job}, commit); }

absl::Status GroupCommitQueue::InsertArray(std::vector<JobRecord>* jobs, CommitFn commit) {
  if (jobs == nullptr || jobs->empty()) return absl::InvalidArgumentError("insert jobs: no jobs");
  std::vector<JobRecord*> all;
  for (JobRecord& j : *jobs) all.push_back(&j);
  absl::Status st = InsertAll(std::move(all), commit);
  return st.ok() ? InsertOutcome(jobs->front()) : st;
}

absl::Status GroupCommitQueue::InsertAll(std::vector<JobRecord*> jobs, CommitFn commit) {
  Pending self{.jobs = std::move(jobs)};
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(&self);
  while (true) {
    // Either a leader commits us, or the commit in flight ends with us still
    // queued and we lead the next one, taking everyone queued meanwhile (when
    // more than max_group_ wait, we may lead more than once).
    cv_.wait(lock, [&] { return self.done || !committing_; });
    if (self.done) break;
    committing_ = true;
    // Callers in arrival order up to max_group_ jobs (at least one caller,
    // however many jobs it brings).
    size_t take = 0, jobs_taken = 0;
    while (take < queue_.size() && (take == 0 || jobs_taken + queue_[take]->jobs.size() <= max_group_)) {
      jobs_taken += queue_[take++]->jobs.size();
    }
    std::vector<Pending*> group(queue_.begin(), queue_.begin() + take);
    queue_.erase(queue_.begin(), queue_.begin() + take);
    lock.unlock();

    std::vector<JobRecord*> all;
    all.reserve(jobs_taken);
    for (const Pending* p : group) all.insert(all.end(), p->jobs.begin(), p->jobs.end());
    const absl::Status status = commit(all);

    lock.lock();
    for (Pending* p : group) {
      p->status = status;
      p->done = true;
    }
    committing_ = false;
    cv_.notify_all();
  }
  return self.status;
}

}  // namespace icos::store
