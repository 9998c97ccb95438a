#include <splitshare/distributed/distributed.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>

namespace splitshare::train {
namespace {

int64_t free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  TORCH_CHECK(fd >= 0, "launch: cannot open a socket to find a free port: ", std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  ::close(fd);
  TORCH_CHECK(ok, "launch: cannot find a free port: ", std::strerror(errno));
  return ntohs(addr.sin_port);
}

}  // namespace

int launch_local(int64_t nproc, const std::vector<std::string>& argv, int64_t port) {
  TORCH_CHECK(nproc >= 1, "launch: --nproc must be at least 1, got ", nproc);
  TORCH_CHECK(!argv.empty(), "launch: no command to run");
  if (port == 0) port = free_port();
  std::map<pid_t, int64_t> children;
  for (int64_t rank = 0; rank < nproc; ++rank) {
    const pid_t pid = ::fork();
    TORCH_CHECK(pid >= 0, "launch: fork failed: ", std::strerror(errno));
    if (pid == 0) {
      ::setenv("RANK", std::to_string(rank).c_str(), 1);
      ::setenv("LOCAL_RANK", std::to_string(rank).c_str(), 1);
      ::setenv("WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("LOCAL_WORLD_SIZE", std::to_string(nproc).c_str(), 1);
      ::setenv("MASTER_ADDR", "127.0.0.1", 1);
      ::setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      std::vector<char*> args;
      for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      ::execv("/proc/self/exe", args.data());
      std::fprintf(stderr, "launch: cannot run %s: %s\n", argv[0].c_str(), std::strerror(errno));
      ::_exit(127);
    }
    children[pid] = rank;
  }
  int result = 0;
  while (!children.empty()) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    const auto rank = children[pid];
    children.erase(pid);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (code != 0 && result == 0) {
      result = code;
      std::fprintf(stderr, "launch: rank %lld exited with status %d; stopping the other ranks\n",
                   static_cast<long long>(rank), code);
      for (const auto& [other, _] : children) ::kill(other, SIGTERM);
    }
  }
  return result;
}

}  // namespace splitshare::train
