// The agent's small POSIX helpers.
#include "agent/sys_util.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace icos::agent {
namespace {

// A listening TCP socket on `ip` (any port); its port.
int Listen(const char* ip, int* fd) {
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  inet_pton(AF_INET, ip, &a.sin_addr);
  EXPECT_EQ(bind(*fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  EXPECT_EQ(listen(*fd, 1), 0);
  socklen_t len = sizeof(a);
  getsockname(*fd, reinterpret_cast<sockaddr*>(&a), &len);
  return ntohs(a.sin_port);
}

TEST(PortInUseTest, AListenerOnAnyOrOneAddressHoldsThePortUntilItCloses) {
  for (const char* ip : {"0.0.0.0", "127.0.0.1"}) {
    int fd = -1;
    const int port = Listen(ip, &fd);
    EXPECT_TRUE(PortInUse(port)) << ip;
    close(fd);
    EXPECT_FALSE(PortInUse(port)) << ip;
  }
  EXPECT_FALSE(PortInUse(0));
  EXPECT_FALSE(PortInUse(70'000));
}

}  // namespace
}  // namespace icos::agent
