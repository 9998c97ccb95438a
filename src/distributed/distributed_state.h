#pragma once
// The process group behind train::Distributed, shared by the collectives (distributed.cpp)
// and the rendezvous (rendezvous.cpp). Internal to src/train/.

#include <splitshare/distributed/distributed.h>

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

#include <memory>
#include <string>
#include <vector>

namespace splitshare::train {

namespace detail {

/// Every rank bumps its counter in the store about once a second on a thread of its own
/// (its own store connection) and reads everyone's, so that when a collective times out
/// the survivors can say which rank fell silent, or that the store host itself did. The
/// thread is detached: a store host that stopped answering must not hold up the exit.
class Heartbeat {
 public:
  /// Beats in the store at host:port under `prefix` (the attempt's key space).
  Heartbeat(const std::string& host, int64_t port, const std::string& prefix, int64_t rank, int64_t world_size,
            int64_t timeout_seconds);
  ~Heartbeat();
  /// "rank 2 (10.0.0.3) silent for 8.2 s", "the store on rank 0 … has not answered for …",
  /// or "" when everyone is still beating; `addresses` by rank.
  std::string silent(const std::vector<std::string>& addresses) const;
  /// Records `mine` as the job's first fault unless another rank recorded one before, and
  /// returns the first (waits at most `limit`; "" when the store does not answer in time).
  /// A `consequence` (a peer closed its connection) first waits up to half of `limit` for
  /// the peer that failed first to record its own.
  std::string first_fault(const std::string& mine, bool consequence, std::chrono::milliseconds limit) const;

  struct Shared;

 private:
  std::shared_ptr<Shared> shared_;
};

}  // namespace detail

struct Distributed::State {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;
  Backend backend = Backend::kGloo;
  // Where the collectives' tensors must be: a CUDA device under NCCL.
  torch::Device device = torch::kCPU;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t timeout_seconds = 300;
  // This rank's address and every rank's ("" where unknown), to name a failing peer.
  std::string address = "127.0.0.1";
  std::vector<std::string> addresses;
  std::unique_ptr<detail::Heartbeat> heartbeat;

  /// Waits for `work`; a failure becomes a DistributedError naming `what`, the seconds
  /// waited and the peer the backend's message points at.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const;
  /// The message of that error for `cause` (the backend's own words).
  std::string fault(const std::string& what, double seconds, const std::string& cause) const;
};

namespace detail {

/// The Gloo backend on `address` ("127.0.0.1" on one machine), or on GLOO_SOCKET_IFNAME's
/// interface when that is set.
c10::intrusive_ptr<c10d::Backend> make_gloo_backend(const c10::intrusive_ptr<c10d::Store>& store, int64_t rank,
                                                    int64_t world_size, std::chrono::milliseconds timeout,
                                                    const std::string& address);

/// The first line of an exception's message, without libtorch's C++ backtrace.
std::string message_of(const std::exception& e);

}  // namespace detail
}  // namespace splitshare::train
