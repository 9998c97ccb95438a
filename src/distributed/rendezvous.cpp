// Joining a multi-host job: the TCPStore rendezvous on MASTER_ADDR:MASTER_PORT, the address
// Gloo listens on, and the checks that turn a wrong address, a missing rank or a second job on
// the same port into a clear DistributedError within the timeout instead of a hang.
#include "distributed_state.h"

#include "backends.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <sstream>

namespace splitshare::train {
namespace {

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost"; }

// The local IPv4 address of the route to host:port (a UDP connect sends nothing).
std::string address_towards(const std::string& host, int64_t port, int64_t rank) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* found = nullptr;
  const int rc = ::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    throw DistributedError("rank " + std::to_string(rank) + ": MASTER_ADDR '" + host +
                           "' does not resolve to an IPv4 address: " + ::gai_strerror(rc));
  }
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in local{};
  socklen_t len = sizeof local;
  const bool ok = fd >= 0 && ::connect(fd, found->ai_addr, found->ai_addrlen) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0;
  const int error = errno;
  if (fd >= 0) ::close(fd);
  ::freeaddrinfo(found);
  if (!ok) {
    throw DistributedError("rank " + std::to_string(rank) + ": no route from this host to MASTER_ADDR " + host + ": " +
                           std::strerror(error));
  }
  char text[INET_ADDRSTRLEN] = {};
  ::inet_ntop(AF_INET, &local.sin_addr, text, sizeof text);
  return text;
}

// TCPStore's own connect retries back off and may overshoot its timeout by seconds: clients
// try in attempts of at most a second until the deadline.
c10::intrusive_ptr<c10d::Store> connect_store(const DistributedOptions& o, c10d::TCPStoreOptions options) {
  const auto full = std::chrono::seconds(o.timeout_seconds());
  const auto deadline = std::chrono::steady_clock::now() + full;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    options.timeout = std::clamp(left, std::chrono::milliseconds(100), std::chrono::milliseconds(1000));
    try {
      auto store = c10::make_intrusive<c10d::TCPStore>(o.master_addr(), options);
      store->setTimeout(full);
      return store;
    } catch (const std::exception&) {
      if (std::chrono::steady_clock::now() + std::chrono::milliseconds(50) >= deadline) throw;
    }
  }
}

c10::intrusive_ptr<c10d::Store> open_store(const DistributedOptions& o) {
  c10d::TCPStoreOptions options;
  options.port = static_cast<uint16_t>(o.master_port());
  options.isServer = o.rank() == 0;
  options.numWorkers = static_cast<size_t>(o.world_size());
  // Who joined is checked below, by rank, so a missing rank is named.
  options.waitWorkers = false;
  options.timeout = std::chrono::seconds(o.timeout_seconds());
  const auto where = o.master_addr() + ":" + std::to_string(o.master_port());
  try {
    if (o.rank() == 0) return c10::make_intrusive<c10d::TCPStore>(o.master_addr(), options);
    return connect_store(o, options);
  } catch (const std::exception& e) {
    const auto cause = detail::message_of(e);
    if (o.rank() == 0 && cause.find("listen") != std::string::npos) {
      throw DistributedError("rank 0: cannot host the rendezvous on port " + std::to_string(o.master_port()) +
                             " (" + cause + "): another job, or one still exiting, uses MASTER_PORT " +
                             std::to_string(o.master_port()) + "; give each job its own port");
    }
    throw DistributedError("rank " + std::to_string(o.rank()) + ": could not reach the rendezvous at " + where +
                           " within --dist-timeout " + std::to_string(o.timeout_seconds()) +
                           " s: is rank 0 running there, are MASTER_ADDR and MASTER_PORT right and the port open? (" +
                           cause + ")");
  }
}

// torchrun restarts a failed job in the same store; each attempt gets its own key space.
std::string attempt_prefix() {
  const char* restart = std::getenv("TORCHELASTIC_RESTART_COUNT");
  return std::string("splitshare/attempt") + (restart != nullptr && *restart != '\0' ? restart : "0");
}

std::string rank_key(int64_t rank, const char* field) {
  return "rank/" + std::to_string(rank) + "/" + field;
}

std::string text_of(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

// Every rank waits for all others to register; a timeout names who is missing.
void wait_for_ranks(Distributed::State& s, const DistributedOptions& o) {
  std::vector<std::string> keys;
  for (int64_t r = 0; r < s.world_size; ++r) keys.push_back(rank_key(r, "address"));
  try {
    s.store->wait(keys, std::chrono::seconds(o.timeout_seconds()));
  } catch (const std::exception& e) {
    std::ostringstream joined, missing;
    try {
      for (int64_t r = 0; r < s.world_size; ++r) {
        if (s.store->check({keys[r]})) {
          joined << (joined.tellp() > 0 ? ", " : "") << r << " (" << text_of(s.store->get(keys[r])) << ")";
        } else {
          missing << (missing.tellp() > 0 ? ", " : "") << r;
        }
      }
    } catch (const std::exception&) {
      throw DistributedError("rank " + std::to_string(s.rank) + ": the rendezvous at " + o.master_addr() + ":" +
                             std::to_string(o.master_port()) +
                             " closed while this rank waited for the others: rank 0 gave up (a rank did not join "
                             "within --dist-timeout) or died (" + detail::message_of(e) + ")");
    }
    throw DistributedError("rank " + std::to_string(s.rank) + ": rank(s) " + missing.str() + " of " +
                           std::to_string(s.world_size) + " did not join the rendezvous at " + o.master_addr() + ":" +
                           std::to_string(o.master_port()) + " within --dist-timeout " +
                           std::to_string(o.timeout_seconds()) + " s (joined: " + joined.str() +
                           "); check WORLD_SIZE and that every host started");
  }
  s.addresses.clear();
  for (const auto& key : keys) s.addresses.push_back(text_of(s.store->get(key)));
}

// Registers this rank; a second holder of the same rank number or a different world size
// means two jobs share the rendezvous (or RANK / WORLD_SIZE are wrong on a host).
void join(Distributed::State& s, const DistributedOptions& o) {
  const auto where = o.master_addr() + ":" + std::to_string(o.master_port());
  if (s.store->add(rank_key(s.rank, "joined"), 1) != 1) {
    throw DistributedError("rank " + std::to_string(s.rank) + ": the rendezvous at " + where +
                           " already has a rank " + std::to_string(s.rank) +
                           ": another job uses the same MASTER_ADDR and MASTER_PORT (give each job its own port), "
                           "or RANK is repeated across hosts");
  }
  const std::string world_key = "world_size";
  if (s.rank == 0) {
    s.store->set(world_key, std::to_string(s.world_size));
  } else {
    try {
      s.store->wait({world_key}, std::chrono::seconds(o.timeout_seconds()));
    } catch (const std::exception& e) {
      throw DistributedError("rank " + std::to_string(s.rank) + ": rank 0 did not register at the rendezvous " + where +
                             " within --dist-timeout " + std::to_string(o.timeout_seconds()) + " s (" +
                             detail::message_of(e) + ")");
    }
    const auto theirs = text_of(s.store->get(world_key));
    if (theirs != std::to_string(s.world_size)) {
      throw DistributedError("rank " + std::to_string(s.rank) + ": WORLD_SIZE is " + std::to_string(s.world_size) +
                             " here but " + theirs + " at the rendezvous " + where +
                             ": another job uses this port, or WORLD_SIZE differs between hosts");
    }
  }
  s.store->set(rank_key(s.rank, "address"), s.address);
  wait_for_ranks(s, o);
}

}  // namespace

namespace detail {

c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                                    int64_t world_size, std::chrono::milliseconds timeout,
                                                    const std::string& address) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* interface = std::getenv("GLOO_SOCKET_IFNAME");
  options->devices.push_back(interface != nullptr && *interface != '\0'
                                 ? c10d::ProcessGroupGloo::createDeviceForInterface(interface)
                                 : c10d::ProcessGroupGloo::createDeviceForHostname(address));
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, static_cast<int>(rank), static_cast<int>(world_size),
                                                     options);
}

std::string message_of(const std::exception& e) {
  const auto* error = dynamic_cast<const c10::Error*>(&e);
  std::string text = error != nullptr ? error->what_without_backtrace() : e.what();
  const auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace detail

std::shared_ptr<Distributed> Distributed::connect(const DistributedOptions& o) {
  TORCH_CHECK(o.timeout_seconds() > 0, "--dist-timeout must be positive, got ", o.timeout_seconds());
  auto state = std::make_unique<State>();
  state->rank = o.rank();
  state->world_size = o.world_size();
  state->timeout_seconds = o.timeout_seconds();
  state->backend = resolve_backend(o.backend(), o.device());
  state->address = is_loopback(o.master_addr()) ? "127.0.0.1" : address_towards(o.master_addr(), o.master_port(), o.rank());
  // Keys of this attempt only: torchrun's agent keeps its store across restarts.
  const auto prefix = attempt_prefix();
  state->store = c10::make_intrusive<c10d::PrefixStore>(prefix, open_store(o));
  join(*state, o);
  state->heartbeat = std::make_unique<detail::Heartbeat>(o.master_addr(), o.master_port(), prefix, o.rank(),
                                                         o.world_size(), o.timeout_seconds());
  const std::chrono::milliseconds timeout = std::chrono::seconds(o.timeout_seconds());
  try {
    if (state->backend == Backend::kNccl) {
      state->device = o.device();
      state->group = detail::make_nccl_backend(state->store, o.rank(), o.world_size(), timeout);
    } else {
      state->group = detail::make_gloo_backend(state->store, o.rank(), o.world_size(), timeout, state->address);
    }
  } catch (const DistributedError&) {
    throw;
  } catch (const std::exception& e) {
    throw DistributedError(state->fault("setting up the " + to_string(state->backend) + " process group", 0,
                                        detail::message_of(e)));
  }
  return std::shared_ptr<Distributed>(new Distributed(std::move(state)));
}

}  // namespace splitshare::train
