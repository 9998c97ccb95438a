#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace splitshare::train {

/// The c10d backend that moves the tensors of the collectives.
enum class Backend {
  kAuto,  ///< NCCL when the training device is CUDA, Gloo otherwise
  kGloo,  ///< CPU tensors (CUDA tensors go through a host copy)
  kNccl,  ///< CUDA tensors; needs a CUDA device and a build with NCCL
};

/// "auto", "gloo" or "nccl"; throws naming the text otherwise.
Backend parse_backend(const std::string& text);
std::string to_string(Backend backend);

/// True when this build has the NCCL backend (built against a libtorch with CUDA).
bool nccl_compiled();

/// The backend a job training on `device` uses: kAuto becomes kNccl for a CUDA device and
/// kGloo otherwise. kNccl on a CPU device, or in a build without NCCL, throws saying why.
Backend resolve_backend(Backend requested, const torch::Device& device);

/// Where this process sits in a data-parallel job.
struct DistributedOptions {
  TORCH_ARG(int64_t, rank) = 0;
  TORCH_ARG(int64_t, world_size) = 1;
  TORCH_ARG(int64_t, local_rank) = 0;
  /// Processes on this machine (LOCAL_WORLD_SIZE, SLURM_NTASKS_PER_NODE; else world_size).
  TORCH_ARG(int64_t, local_world_size) = 1;
  TORCH_ARG(std::string, master_addr) = "127.0.0.1";
  TORCH_ARG(int64_t, master_port) = 29500;
  /// Seconds a rank waits for the others (`train --dist-timeout`): in the rendezvous, and in
  /// each collective before it gives up with a DistributedError. Five minutes: longer than a
  /// checkpoint write or a slow step, short enough that a dead host does not hold the job.
  TORCH_ARG(int64_t, timeout_seconds) = 300;
  /// The collectives' backend (resolved against `device` by connect).
  TORCH_ARG(Backend, backend) = Backend::kAuto;
  /// The device this rank trains on (cuda:LOCAL_RANK for NCCL).
  TORCH_ARG(torch::Device, device) = torch::Device(torch::kCPU);
};

/// The job described by the environment: torchrun's RANK, WORLD_SIZE, LOCAL_RANK,
/// MASTER_ADDR, MASTER_PORT, or SLURM's SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID
/// (with MASTER_ADDR/MASTER_PORT, or SLURM_LAUNCH_NODE_IPADDR and port 29500).
/// nullopt when neither is set or WORLD_SIZE is 1. Throws naming a malformed variable.
std::optional<DistributedOptions> distributed_from_env();

/// The rendezvous or a collective failed because of another rank or the network: a peer
/// died, did not answer within DistributedOptions::timeout_seconds (stopped, hung, its link
/// down), or another job shares the rendezvous. The message names this rank and its
/// address, the operation, the seconds waited and, when known, the peer's rank and address.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A c10d process group (Gloo for CPU tensors, NCCL for CUDA tensors) and the collectives
/// data-parallel training needs. Collectives throw DistributedError when a peer fails.
class Distributed {
 public:
  /// Joins the group through a TCPStore on master_addr:master_port (rank 0 hosts it), with
  /// the backend resolve_backend(options.backend(), options.device()) picks. Gloo listens on
  /// the address this host uses to reach master_addr (or on GLOO_SOCKET_IFNAME's interface).
  /// Throws DistributedError, within timeout_seconds, when the rendezvous cannot be reached
  /// or hosted (port in use), when not every rank joins (naming the missing ones), or when
  /// a rank number or world size clashes with another job on the same port.
  static std::shared_ptr<Distributed> connect(const DistributedOptions& options);
  /// Joins the group through a FileStore at `path` (several ranks in one process, tests).
  static std::shared_ptr<Distributed> connect_file(const std::string& path, int64_t rank, int64_t world_size,
                                                   int64_t timeout_seconds = DistributedOptions().timeout_seconds());
  ~Distributed();

  int64_t rank() const;
  int64_t world_size() const;
  /// This rank's address as the others reach it ("127.0.0.1" on one machine).
  std::string address() const;
  /// kGloo or kNccl.
  Backend backend() const;
  bool is_main() const { return rank() == 0; }

  /// Copies rank 0's parameters and buffers into every rank's `module`.
  void broadcast_module(torch::nn::Module& module);
  /// Averages the gradients of `module`'s parameters over all ranks, packing them into
  /// flat buckets of about `bucket_bytes` so each all-reduce moves a large message.
  void average_gradients(torch::nn::Module& module, int64_t bucket_bytes = 25 << 20);
  /// Sums each tensor over all ranks, in place (CPU tensors go through the device under NCCL).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  void barrier();

  /// The group's internals (defined in src/train/distributed_state.h).
  struct State;

 private:
  friend class GradientAverager;
  explicit Distributed(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// Averages gradients over the ranks while the backward pass is still running, like
/// PyTorch's DistributedDataParallel: the parameters are packed into buckets in reverse
/// registration order (roughly the order their gradients are produced), a hook on each
/// parameter copies its gradient into its bucket, and a bucket's all-reduce starts
/// asynchronously as soon as all of its gradients are in (and every earlier bucket has
/// started, so all ranks issue the collectives in the same order). finish() waits for
/// them and writes the averages into the parameters' `.grad`. Parameters whose gradient
/// never arrives (unused in this forward, or frozen after construction) contribute zeros
/// and their buckets are started in finish(), so the result always equals
/// Distributed::average_gradients.
///
/// ```
/// GradientAverager averager(dist, model->parameters());
/// optimizer.zero_grad();
/// averager.prepare();
/// loss.backward();
/// averager.finish();
/// optimizer.step();
/// ```
class GradientAverager {
 public:
  /// Hooks the parameters of `parameters` that require gradients. The first bucket is at
  /// most 1 MB (it starts early), the others `bucket_bytes`.
  GradientAverager(std::shared_ptr<Distributed> distributed, const std::vector<torch::Tensor>& parameters,
                   int64_t bucket_bytes = 25 << 20);
  /// Removes the hooks.
  ~GradientAverager();
  GradientAverager(const GradientAverager&) = delete;
  GradientAverager& operator=(const GradientAverager&) = delete;

  /// Arms the hooks for the next backward pass (gradients outside prepare/finish, e.g.
  /// Grad-CAM on rank 0, are left alone). The `.grad` of each parameter must be zero or
  /// undefined before that backward.
  void prepare();
  /// Starts the buckets still pending, waits for all and stores the averaged gradients.
  void finish();

  int64_t buckets() const;
  /// Buckets of the last pass whose all-reduce started during backward (not in finish()).
  int64_t started_during_backward() const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace splitshare::train

namespace splitshare::train {

/// Runs `argv` (argv[0] = the program) as `nproc` local processes with torchrun's
/// environment (RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1, MASTER_PORT=port;
/// port 0 picks a free one). Waits for all; when one fails the others are stopped.
/// Returns 0, or the first non-zero exit status.
int launch_local(int64_t nproc, const std::vector<std::string>& argv, int64_t port = 0);

}  // namespace splitshare::train
