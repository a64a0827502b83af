// A fixed set of threads running tasks from a bounded queue. The server
// (server.h) keeps one per channel, so that one kind of client filling its
// queue cannot take the threads another kind needs, and a full queue is
// answered at once (503) instead of growing without bound.
//
// Thread-safety: all methods are thread-safe.
#ifndef ICOS_NET_WORKER_POOL_H_
#define ICOS_NET_WORKER_POOL_H_

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace icos::net {

class WorkerPool {
 public:
  // REQUIRES: threads >= 1.
  WorkerPool(std::string name, int threads, size_t max_queued);
  ~WorkerPool();  // Stop()
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` unless `max_queued` tasks already wait for a thread (or the
  // pool has stopped): false then, and the task is dropped. A task an idle
  // thread will take at once does not wait.
  bool TrySubmit(std::function<void()> task);
  // Queues `task` whatever the queue holds: for work the server owes once
  // admitted (a deferred response's timeout), which the connection caps
  // bound. Dropped once the pool has stopped.
  void Submit(std::function<void()> task);
  // Stops taking tasks, runs the ones queued, joins the threads. Idempotent.
  void Stop();

  const std::string& name() const { return name_; }
  size_t queued() const;

 private:
  void Run();

  const std::string name_;
  const size_t max_queued_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  size_t idle_ = 0;  // threads waiting for a task
  std::vector<std::thread> threads_;
};

}  // namespace icos::net

#endif  // ICOS_NET_WORKER_POOL_H_
