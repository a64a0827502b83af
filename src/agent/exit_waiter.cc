#include "agent/exit_waiter.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>

namespace icos::agent {

ExitWaiter::ExitWaiter() : wake_fd_(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

ExitWaiter::~ExitWaiter() {
  if (wake_fd_ >= 0) close(wake_fd_);
  for (int fd : pidfds_) close(fd);
}

void ExitWaiter::Watch(pid_t pid) {
#ifdef SYS_pidfd_open
  const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return;  // ESRCH: gone already (the tick collects it); ENOSYS: an old kernel
  // pidfd_open gives no O_CLOEXEC flag: pidfds are close-on-exec by definition.
  std::lock_guard<std::mutex> lock(mu_);
  pidfds_.push_back(fd);
#else
  (void)pid;
#endif
}

void ExitWaiter::Wake() {
  if (wake_fd_ < 0) return;
  const uint64_t one = 1;
  // EAGAIN only when the counter is full, which still wakes the waiter.
  [[maybe_unused]] ssize_t n = write(wake_fd_, &one, sizeof one);
}

void ExitWaiter::Wait(int timeout_ms) {
  std::vector<pollfd> fds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    fds.reserve(pidfds_.size() + 1);
    for (int fd : pidfds_) fds.push_back({.fd = fd, .events = POLLIN, .revents = 0});
  }
  if (wake_fd_ >= 0) fds.push_back({.fd = wake_fd_, .events = POLLIN, .revents = 0});
  if (poll(fds.data(), fds.size(), timeout_ms) <= 0) return;  // timeout, or EINTR: the tick's work follows anyway
  std::vector<int> exited;
  for (const pollfd& p : fds) {
    if (p.revents == 0) continue;
    if (p.fd == wake_fd_) {
      uint64_t count = 0;
      [[maybe_unused]] ssize_t n = read(wake_fd_, &count, sizeof count);
    } else {
      exited.push_back(p.fd);
    }
  }
  if (exited.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (int fd : exited) {
    pidfds_.erase(std::remove(pidfds_.begin(), pidfds_.end(), fd), pidfds_.end());
    close(fd);
  }
}

size_t ExitWaiter::watched() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pidfds_.size();
}

}  // namespace icos::agent
