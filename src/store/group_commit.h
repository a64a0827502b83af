// GroupCommitQueue: batches concurrent InsertJob calls into one transaction,
// so N submits that arrive together cost one durable commit (one fsync or WAL
// flush), not N. Both StateStore backends use it.
//
// The caller that finds no commit in flight leads: it takes everyone queued
// (in arrival order, at most max_group), commits them with the backend's
// function outside the queue's lock, and wakes them with the group's status.
// Callers that arrive meanwhile queue for the next group.
#ifndef ICOS_STORE_GROUP_COMMIT_H_
#define ICOS_STORE_GROUP_COMMIT_H_

#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "store/records.h"

namespace icos::store {

class GroupCommitQueue {
 public:
  // Commits a group: every job in it, or none (then the status says why).
  // Assigns job ids only on success.
  using CommitFn = absl::FunctionRef<absl::Status(const std::vector<JobRecord*>&)>;

  explicit GroupCommitQueue(int max_group) : max_group_(max_group < 1 ? 1 : static_cast<size_t>(max_group)) {}

  // Returns once `job` is committed (OK) or its group failed (that status).
  absl::Status Insert(JobRecord* job, CommitFn commit);
  // The same for several jobs that must commit together (a job array): they
  // are never split across groups, and stay together in order.
  absl::Status InsertAll(std::vector<JobRecord*> jobs, CommitFn commit);
  // StateStore::InsertJobs on top of InsertAll: the status of the whole
  // (InsertOutcome of its first job once committed).
  absl::Status InsertArray(std::vector<JobRecord>* jobs, CommitFn commit);

 private:
  // One caller waiting here; lives on its stack.
  struct Pending {
    std::vector<JobRecord*> jobs;
    absl::Status status;
    bool done = false;
  };

  const size_t max_group_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Pending*> queue_ ABSL_GUARDED_BY(mu_);
  bool committing_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace icos::store

#endif  // ICOS_STORE_GROUP_COMMIT_H_
