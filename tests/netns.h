#pragma once

// A test bed of hosts on one machine: network namespaces joined through a bridge that lives in
// a "switch" namespace of its own, so the test addresses (10.231.0.0/24) exist inside the
// namespaces only and nothing reaches the machine's own network. Each host has eth0 at
// 10.231.0.<i+1> and loopback. Needs root and iproute2's `ip netns` (available() says why not);
// everything is torn down in the destructor, also when a test fails.

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "support.h"

namespace splitshare::testing {

/// A process started on a test host: its pid and the file holding its stdout and stderr.
struct HostProcess {
  pid_t pid = -1;
  std::string log;
  int status = -1;  // exit status once reaped (128 + signal when killed)
  bool running() const { return pid > 0 && status < 0; }
};

class TestHosts {
 public:
  /// `count` hosts named after this process so that tests running at once do not collide.
  explicit TestHosts(int count)
      : prefix_("ss" + std::to_string(::getpid() % 100000) + "x" + std::to_string(std::random_device()() % 1000)) {
    if (::geteuid() != 0) {
      reason_ = "needs root for ip netns (running as uid " + std::to_string(::geteuid()) + ")";
      return;
    }
    namespaces_.push_back(ns("sw"));
    ok_ = sh("ip netns add " + ns("sw")) && sh("ip -n " + ns("sw") + " link add br0 type bridge") &&
          sh("ip -n " + ns("sw") + " link set br0 up");
    for (int i = 0; ok_ && i < count; ++i) ok_ = add_host(i);
    if (!ok_) reason_ = "ip netns / veth set-up failed (not allowed here?): " + last_output_;
    hosts_ = ok_ ? count : 0;
  }
  ~TestHosts() {
    for (auto& p : processes_) {
      if (p.running()) {
        ::kill(p.pid, SIGCONT);
        ::kill(p.pid, SIGKILL);
        ::waitpid(p.pid, nullptr, 0);
      }
    }
    for (const auto& name : namespaces_) sh("ip netns del " + name);
  }
  TestHosts(const TestHosts&) = delete;
  TestHosts& operator=(const TestHosts&) = delete;

  /// False, with reason(), when namespaces cannot be made here.
  bool available() const { return ok_; }
  const std::string& reason() const { return reason_; }
  static std::string address(int host) { return "10.231.0." + std::to_string(host + 1); }

  /// Starts `argv` on `host` with `env` ("NAME=value") added, output to `log`; returns its index.
  size_t start(int host, const std::vector<std::string>& env, const std::vector<std::string>& argv,
               const std::string& log) {
    std::vector<std::string> full = {"ip", "netns", "exec", ns("h" + std::to_string(host)), "env"};
    full.insert(full.end(), env.begin(), env.end());
    full.insert(full.end(), argv.begin(), argv.end());
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> args;
      for (auto& a : full) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp("ip", args.data());
      ::_exit(127);
    }
    processes_.push_back({pid, log});
    return processes_.size() - 1;
  }
  HostProcess& process(size_t i) { return processes_.at(i); }

  /// Waits up to `limit` for process `i` to exit; returns false when it is still running.
  bool wait(size_t i, std::chrono::milliseconds limit) {
    auto& p = processes_.at(i);
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (p.running()) {
      int status = 0;
      const pid_t done = ::waitpid(p.pid, &status, WNOHANG);
      if (done == p.pid) {
        p.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        break;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }
  void signal(size_t i, int sig) { ::kill(processes_.at(i).pid, sig); }
  /// Takes host's link down (or up): its packets stop, no connection is closed.
  bool link(int host, bool up) {
    return sh("ip -n " + ns("h" + std::to_string(host)) + " link set eth0 " + (up ? "up" : "down"));
  }

 private:
  std::string ns(const std::string& name) const { return prefix_ + name; }
  bool sh(const std::string& command) {
    last_output_.clear();
    return run_command(command, &last_output_) == 0;
  }
  bool add_host(int i) {
    const auto host = ns("h" + std::to_string(i)), sw = ns("sw");
    const auto veth = prefix_ + "e" + std::to_string(i), port = prefix_ + "p" + std::to_string(i);
    namespaces_.push_back(host);
    return sh("ip netns add " + host) && sh("ip -n " + host + " link set lo up") &&
           sh("ip link add " + veth + " type veth peer name " + port) && sh("ip link set " + veth + " netns " + host) &&
           sh("ip link set " + port + " netns " + sw) && sh("ip -n " + host + " link set " + veth + " name eth0") &&
           sh("ip -n " + host + " addr add " + address(i) + "/24 dev eth0") && sh("ip -n " + host + " link set eth0 up") &&
           sh("ip -n " + sw + " link set " + port + " master br0") && sh("ip -n " + sw + " link set " + port + " up");
  }

  std::string prefix_;
  bool ok_ = false;
  int hosts_ = 0;
  std::string reason_, last_output_;
  std::vector<std::string> namespaces_;
  std::vector<HostProcess> processes_;
};

}  // namespace splitshare::testing
