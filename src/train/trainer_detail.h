#pragma once

// What train::fit (fit.cpp) shares with the rest of the trainer (trainer.cpp): the optimizer's
// state by parameter name, resume checks, the output folder. Internal to src/train/.

#include <splitshare/train/checkpoint.h>
#include <splitshare/train/trainer.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace splitshare::train::detail {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start);

/// Checks that `dir` can take the run's checkpoints and removes temporary files a killed run left.
void prepare_out_dir(const std::string& dir, torch::nn::Module& model);

/// The SGD parameter groups (backbone, head; without options of their own, so they take the
/// optimizer's momentum and weight decay) and each group's rate relative to the schedule's.
/// A frozen backbone gets no group and no gradients.
struct ParameterGroups {
  std::vector<torch::optim::OptimizerParamGroup> groups;
  std::vector<double> lr_factors;
};
ParameterGroups parameter_groups(nn::ClassifierImpl& model, double base_lr, const TrainOptions& options);

/// SGD momentum buffers by checkpoint name, and back (throws naming `source` on a mismatch).
std::map<std::string, torch::Tensor> momentum_by_name(nn::ClassifierImpl& model, torch::optim::SGD& optimizer);
void restore_momentum(nn::ClassifierImpl& model, torch::optim::SGD& optimizer,
                      const std::map<std::string, torch::Tensor>& momentum, const std::string& source);


/// Refuses to continue a run under different settings (except a longer one).
void check_resumable(const TrainingState& state, const TrainOptions& options, const std::string& path);

/// All ranks stop at the same step: the first non-zero request wins everywhere.
int agree_on_stop(int request, const std::shared_ptr<Distributed>& dist);

}  // namespace splitshare::train::detail
