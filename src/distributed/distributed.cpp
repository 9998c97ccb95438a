#include <splitshare/distributed/distributed.h>

#include "backends.h"
#include "distributed_state.h"

#include <torch/csrc/distributed/c10d/FileStore.hpp>

#include <chrono>
#include <cstdlib>
#include <iomanip>
#include <map>
#include <mutex>
#include <sstream>

namespace splitshare::train {
namespace {

std::optional<std::string> env(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') return std::nullopt;
  return std::string(value);
}

int64_t env_int(const char* name, const std::string& text) {
  try {
    size_t used = 0;
    const auto value = std::stoll(text, &used);
    TORCH_CHECK(used == text.size(), "");
    return value;
  } catch (const std::exception&) {
    TORCH_CHECK(false, "environment variable ", name, "='", text, "' is not an integer");
  }
}

}  // namespace

Backend parse_backend(const std::string& text) {
  if (text == "auto") return Backend::kAuto;
  if (text == "gloo") return Backend::kGloo;
  if (text == "nccl") return Backend::kNccl;
  TORCH_CHECK(false, "unknown backend '", text, "': expected auto, gloo or nccl");
}

std::string to_string(Backend backend) {
  switch (backend) {
    case Backend::kAuto: return "auto";
    case Backend::kGloo: return "gloo";
    case Backend::kNccl: return "nccl";
  }
  return "?";
}

bool nccl_compiled() { return detail::nccl_backend_compiled(); }

Backend resolve_backend(Backend requested, const torch::Device& device) {
  if (requested == Backend::kAuto) requested = device.is_cuda() ? Backend::kNccl : Backend::kGloo;
  if (requested == Backend::kNccl) {
    TORCH_CHECK(device.is_cuda(), "backend nccl needs a CUDA device, but this rank trains on ", device,
                ": NCCL moves CUDA tensors only; use --backend gloo (or auto) on the CPU");
    TORCH_CHECK(nccl_compiled(), "backend nccl: this splitshare was built against a libtorch without CUDA; "
                                 "rebuild against a CUDA libtorch or use --backend gloo");
  }
  return requested;
}

std::optional<DistributedOptions> distributed_from_env() {
  DistributedOptions o;
  if (auto world = env("WORLD_SIZE")) {
    o.world_size(env_int("WORLD_SIZE", *world));
    auto rank = env("RANK");
    TORCH_CHECK(rank, "WORLD_SIZE is set but RANK is not (torchrun sets both)");
    o.rank(env_int("RANK", *rank));
    if (auto local = env("LOCAL_RANK")) o.local_rank(env_int("LOCAL_RANK", *local));
  } else if (auto tasks = env("SLURM_NTASKS")) {
    o.world_size(env_int("SLURM_NTASKS", *tasks));
    auto proc = env("SLURM_PROCID");
    TORCH_CHECK(proc, "SLURM_NTASKS is set but SLURM_PROCID is not");
    o.rank(env_int("SLURM_PROCID", *proc));
    if (auto local = env("SLURM_LOCALID")) o.local_rank(env_int("SLURM_LOCALID", *local));
    if (auto addr = env("SLURM_LAUNCH_NODE_IPADDR")) o.master_addr(*addr);
  } else {
    return std::nullopt;
  }
  o.local_world_size(o.world_size());
  for (const char* name : {"LOCAL_WORLD_SIZE", "SLURM_NTASKS_PER_NODE"}) {
    // SLURM writes e.g. "2(x3)"; the leading count is what this machine runs.
    if (auto local = env(name)) {
      o.local_world_size(std::max<int64_t>(1, std::atoll(local->c_str())));
      break;
    }
  }
  if (auto addr = env("MASTER_ADDR")) o.master_addr(*addr);
  if (auto port = env("MASTER_PORT")) o.master_port(env_int("MASTER_PORT", *port));
  TORCH_CHECK(o.world_size() >= 1, "world size must be positive, got ", o.world_size());
  TORCH_CHECK(o.rank() >= 0 && o.rank() < o.world_size(), "rank ", o.rank(), " is outside 0..", o.world_size() - 1);
  TORCH_CHECK(o.master_port() > 0 && o.master_port() < 65536, "MASTER_PORT ", o.master_port(), " is not a port");
  if (o.world_size() == 1) return std::nullopt;
  return o;
}

Distributed::Distributed(std::unique_ptr<State> state) : state_(std::move(state)) {}
Distributed::~Distributed() = default;

std::shared_ptr<Distributed> Distributed::connect_file(const std::string& path, int64_t rank, int64_t world_size,
                                                      int64_t timeout_seconds) {
  auto state = std::make_unique<State>();
  state->store = c10::make_intrusive<c10d::FileStore>(path, static_cast<int>(world_size));
  state->rank = rank;
  state->world_size = world_size;
  state->timeout_seconds = timeout_seconds;
  state->addresses.assign(static_cast<size_t>(world_size), "127.0.0.1");
  state->group = detail::make_gloo_backend(state->store, rank, world_size, std::chrono::seconds(timeout_seconds),
                                           state->address);
  return std::shared_ptr<Distributed>(new Distributed(std::move(state)));
}

void Distributed::State::wait(const c10::intrusive_ptr<c10d::Work>& work, const std::string& what) const {
  const auto start = std::chrono::steady_clock::now();
  try {
    work->wait();
  } catch (const std::exception& e) {
    const std::chrono::duration<double> waited = std::chrono::steady_clock::now() - start;
    throw DistributedError(fault(what, waited.count(), detail::message_of(e)));
  }
}

std::string Distributed::State::fault(const std::string& what, double seconds, const std::string& cause) const {
  const auto has = [&cause](const char* word) { return cause.find(word) != std::string::npos; };
  std::ostringstream seen;  // what this rank saw, also published as the job's first fault
  seen << "rank " << rank << " (" << address << "): ";
  const bool closed = has("losed") || has("reset") || has("roken pipe") || has("efused") || has("EOF");
  if (has("imed out") || has("imeout")) {
    seen << "no answer within --dist-timeout " << timeout_seconds
         << " s: another rank stopped (hung, SIGSTOP) or the network to it is down";
    const auto quiet = heartbeat ? heartbeat->silent(addresses) : std::string();
    if (!quiet.empty()) seen << "; heartbeats: " << quiet;
  } else if (closed) {
    seen << "a peer closed its connection: its process died or exited";
  } else {
    seen << "the backend failed";
  }
  // Name the peer when the backend's message holds its address.
  std::map<std::string, std::vector<int64_t>> ranks_at;
  for (size_t r = 0; r < addresses.size(); ++r) {
    if (static_cast<int64_t>(r) != rank && !addresses[r].empty()) ranks_at[addresses[r]].push_back(static_cast<int64_t>(r));
  }
  for (const auto& [addr, ranks] : ranks_at) {
    if (addr == address || cause.find("[" + addr + "]") == std::string::npos) continue;
    seen << "; peer " << addr << " (rank" << (ranks.size() > 1 ? "s " : " ");
    for (size_t i = 0; i < ranks.size(); ++i) seen << (i ? " or " : "") << ranks[i];
    seen << ")";
  }
  std::ostringstream m;
  m << "rank " << rank << " (" << address << "): " << what << " failed after " << std::fixed << std::setprecision(1)
    << seconds << " s: " << seen.str().substr(seen.str().find("): ") + 3);
  // A rank that fails because a peer gave up first points at that peer: say what the first saw.
  const auto first =
      heartbeat ? heartbeat->first_fault(seen.str(), closed, std::chrono::milliseconds(1000)) : std::string();
  if (!first.empty() && first != seen.str()) m << "; the first rank to fail saw: " << first;
  // Gloo's words without its source path and advice.
  auto core = cause;
  if (core.rfind("[", 0) == 0 && core.find("] ") != std::string::npos) core = core.substr(core.find("] ") + 2);
  if (core.find(". This is typically") != std::string::npos) core = core.substr(0, core.find(". This is typically"));
  m << " [" << core << "]";
  return m.str();
}

int64_t Distributed::rank() const { return state_->rank; }
int64_t Distributed::world_size() const { return state_->world_size; }
std::string Distributed::address() const { return state_->address; }
Backend Distributed::backend() const { return state_->backend; }

void Distributed::broadcast_module(torch::nn::Module& module) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p);
  for (auto& b : module.buffers()) tensors.push_back(b);
  for (auto& t : tensors) {
    // Gloo broadcasts contiguous tensors; channels-last weights go through a copy.
    auto buffer = t.is_contiguous() ? t : t.contiguous();
    std::vector<torch::Tensor> one{buffer};
    state_->wait(state_->group->broadcast(one, c10d::BroadcastOptions{0}), "the broadcast of rank 0's model");
    if (!buffer.is_same(t)) t.copy_(buffer);
  }
}

void Distributed::average_gradients(torch::nn::Module& module, int64_t bucket_bytes) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> grads;
  for (auto& p : module.parameters()) {
    if (p.requires_grad() && p.grad().defined()) grads.push_back(p.grad());
  }
  size_t start = 0;
  while (start < grads.size()) {
    size_t end = start;
    int64_t bytes = 0;
    const auto dtype = grads[start].scalar_type();
    while (end < grads.size() && grads[end].scalar_type() == dtype &&
           (end == start || bytes + grads[end].nbytes() <= static_cast<size_t>(bucket_bytes))) {
      bytes += grads[end].nbytes();
      ++end;
    }
    std::vector<torch::Tensor> flat_parts;
    for (size_t i = start; i < end; ++i) flat_parts.push_back(grads[i].reshape({-1}));
    std::vector<torch::Tensor> bucket{torch::cat(flat_parts)};
    state_->wait(state_->group->allreduce(bucket), "the all-reduce of gradients");
    bucket[0].div_(static_cast<double>(state_->world_size));
    int64_t offset = 0;
    for (size_t i = start; i < end; ++i) {
      const auto n = grads[i].numel();
      grads[i].copy_(bucket[0].narrow(0, offset, n).view_as(grads[i]));
      offset += n;
    }
    start = end;
  }
}

void Distributed::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  for (auto& t : tensors) {
    auto moved = t.device() == state_->device || state_->device.is_cpu() ? t : t.to(state_->device);
    std::vector<torch::Tensor> one{moved};
    state_->wait(state_->group->allreduce(one), "an all-reduce of sums (metrics, SyncBatchNorm)");
    if (!moved.is_same(t)) t.copy_(moved);
  }
}

void Distributed::barrier() { state_->wait(state_->group->barrier(), "a barrier"); }

namespace {

using WorkPtr = c10::intrusive_ptr<c10d::Work>;

struct Bucket {
  std::vector<size_t> params;
  std::vector<int64_t> offsets;
  int64_t numel = 0;
  torch::Tensor flat;
  size_t pending = 0;
  bool started = false;
  WorkPtr work;
  std::vector<torch::Tensor> message;
};

}  // namespace

struct GradientAverager::State {
  std::shared_ptr<Distributed> dist;
  std::vector<torch::Tensor> params;
  std::vector<unsigned> hooks;
  std::vector<size_t> bucket_of, slot_of;
  std::vector<bool> arrived;
  std::vector<Bucket> buckets;
  size_t next_start = 0;
  bool armed = false;
  int64_t started_early = 0;
  // Hooks run on the autograd engine's threads (one per device for CUDA).
  std::mutex mutex;

  void start(size_t b) {
    auto& bucket = buckets[b];
    bucket.message = {bucket.flat};
    bucket.work = dist->state_->group->allreduce(bucket.message);
    bucket.started = true;
  }

  // Buckets start strictly in order so every rank issues the same sequence of collectives.
  void start_ready() {
    while (next_start < buckets.size() && buckets[next_start].pending == 0) start(next_start++);
  }

  void on_gradient(size_t i, const torch::Tensor& grad) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    auto& bucket = buckets[bucket_of[i]];
    auto slot = bucket.flat.narrow(0, bucket.offsets[slot_of[i]], params[i].numel()).view(params[i].sizes());
    torch::NoGradGuard no_grad;
    if (arrived[i]) {
      slot.add_(grad);
      return;
    }
    slot.copy_(grad);
    arrived[i] = true;
    if (--bucket.pending == 0) {
      const auto before = next_start;
      start_ready();
      started_early += static_cast<int64_t>(next_start - before);
    }
  }
};

GradientAverager::GradientAverager(std::shared_ptr<Distributed> distributed, const std::vector<torch::Tensor>& parameters,
                                   int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  TORCH_CHECK(distributed, "GradientAverager: no process group");
  TORCH_CHECK(bucket_bytes > 0, "GradientAverager: bucket_bytes must be positive, got ", bucket_bytes);
  auto& s = *state_;
  s.dist = std::move(distributed);
  for (const auto& p : parameters) {
    if (p.requires_grad()) s.params.push_back(p);
  }
  s.bucket_of.resize(s.params.size());
  s.slot_of.resize(s.params.size());
  s.arrived.assign(s.params.size(), false);
  int64_t bytes = 0;
  for (size_t k = s.params.size(); k-- > 0;) {
    const auto& p = s.params[k];
    // The current bucket is the first one while buckets.size() == 1: it starts the earliest, so it is small.
    const int64_t cap = s.buckets.size() == 1 ? std::min<int64_t>(bucket_bytes, 1 << 20) : bucket_bytes;
    const bool fits = !s.buckets.empty() && s.buckets.back().flat.scalar_type() == p.scalar_type() &&
                      s.buckets.back().flat.device() == p.device() &&
                      (s.buckets.back().params.empty() || bytes + static_cast<int64_t>(p.nbytes()) <= cap);
    if (!fits) {
      s.buckets.emplace_back();
      s.buckets.back().flat = torch::empty({0}, p.options());
      bytes = 0;
    }
    auto& bucket = s.buckets.back();
    s.bucket_of[k] = s.buckets.size() - 1;
    s.slot_of[k] = bucket.params.size();
    bucket.params.push_back(k);
    bucket.offsets.push_back(bucket.numel);
    bucket.numel += p.numel();
    bytes += static_cast<int64_t>(p.nbytes());
  }
  for (auto& bucket : s.buckets) bucket.flat = torch::zeros({bucket.numel}, bucket.flat.options());
  std::weak_ptr<State> weak = state_;
  for (size_t k = 0; k < s.params.size(); ++k) {
    s.hooks.push_back(s.params[k].register_hook([weak, k](const torch::Tensor& grad) {
      if (auto state = weak.lock()) state->on_gradient(k, grad);
    }));
  }
}

GradientAverager::~GradientAverager() {
  auto& s = *state_;
  for (size_t k = 0; k < s.params.size(); ++k) s.params[k].remove_hook(s.hooks[k]);
}

void GradientAverager::prepare() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  for (auto& bucket : s.buckets) {
    bucket.pending = bucket.params.size();
    bucket.started = false;
  }
  s.arrived.assign(s.params.size(), false);
  s.next_start = 0;
  s.started_early = 0;
  s.armed = true;
}

void GradientAverager::finish() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  TORCH_CHECK(s.armed, "GradientAverager::finish without prepare");
  s.armed = false;
  torch::NoGradGuard no_grad;
  // Gradients that never came: this rank's .grad if it has one, else zeros.
  for (size_t b = s.next_start; b < s.buckets.size(); ++b) {
    auto& bucket = s.buckets[b];
    for (size_t j = 0; j < bucket.params.size(); ++j) {
      const auto k = bucket.params[j];
      if (s.arrived[k]) continue;
      auto slot = bucket.flat.narrow(0, bucket.offsets[j], s.params[k].numel()).view(s.params[k].sizes());
      const auto& grad = s.params[k].grad();
      if (grad.defined()) {
        slot.copy_(grad);
      } else {
        slot.zero_();
      }
    }
    bucket.pending = 0;
  }
  s.start_ready();
  const double world = static_cast<double>(s.dist->world_size());
  for (size_t b = 0; b < s.buckets.size(); ++b) {
    auto& bucket = s.buckets[b];
    s.dist->state_->wait(bucket.work, "the all-reduce of gradient bucket " + std::to_string(b + 1) + " of " +
                                          std::to_string(s.buckets.size()));
    bucket.flat.div_(world);
    for (size_t j = 0; j < bucket.params.size(); ++j) {
      auto& p = s.params[bucket.params[j]];
      auto average = bucket.flat.narrow(0, bucket.offsets[j], p.numel()).view(p.sizes());
      if (p.grad().defined()) {
        p.mutable_grad().copy_(average);
      } else if (s.arrived[bucket.params[j]]) {
        p.mutable_grad() = average.clone();
      }
    }
  }
}

int64_t GradientAverager::buckets() const { return static_cast<int64_t>(state_->buckets.size()); }
int64_t GradientAverager::started_during_backward() const { return state_->started_early; }

}  // namespace splitshare::train
