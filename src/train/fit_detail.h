#pragma once

// What train::fit (fit.cpp) takes from its set-up (fit_setup.cpp): the output folder, parameter
// groups and optimizer settings, parameters by checkpoint name, resume checks, the ranks'
// agreement on stopping. Internal to src/train/.

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/train/fit.h>

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

/// The parameter groups (backbone, head; each split into decayed and not decayed parameters
/// with TrainOptions::no_decay_bn_bias) with each group's rate relative to the schedule's.
/// A frozen backbone gets no group and no gradients.
std::vector<ParameterGroup> parameter_groups(nn::ClassifierImpl& model, double base_lr, const TrainOptions& options);

/// The optimizer settings of `options`.
OptimizerOptions optimizer_options(const TrainOptions& options);

/// The model's parameters by checkpoint name (what the optimizer state and the EMA are keyed by).
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_named_parameters(nn::ClassifierImpl& model);

/// Refuses to continue a run under different settings (except a longer one).
void check_resumable(const TrainingState& state, const TrainOptions& options, const std::string& path);

/// All ranks stop at the same step: the first non-zero request wins everywhere.
int agree_on_stop(int request, const std::shared_ptr<Distributed>& dist);

}  // namespace splitshare::train::detail
