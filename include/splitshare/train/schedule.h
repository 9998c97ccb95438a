#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

namespace splitshare::train {

/// Learning-rate decay after warm-up.
enum class ScheduleKind {
  /// Multiply by `gamma` at each milestone epoch (the paper: x0.1 at 30 and 60 of 90).
  kStep,
  /// Half-cosine from the base rate to 0 over the remaining epochs.
  kCosine,
};

std::string to_string(ScheduleKind kind);
ScheduleKind parse_schedule_kind(const std::string& text);

/// A learning-rate schedule over fractional epochs.
struct ScheduleOptions {
  TORCH_ARG(double, base_lr) = 0.1;
  TORCH_ARG(ScheduleKind, kind) = ScheduleKind::kStep;
  TORCH_ARG(int64_t, epochs) = 90;
  /// Step schedule: epochs at which the rate is multiplied by gamma. Empty = the
  /// paper's proportions (1/3 and 2/3 of the run).
  TORCH_ARG(std::vector<int64_t>, milestones) = {};
  TORCH_ARG(double, gamma) = 0.1;
  /// Linear warm-up from 0 over this many epochs (fractional allowed).
  TORCH_ARG(double, warmup_epochs) = 0.0;
};

/// The rate at fractional epoch `t` (0 <= t <= epochs).
double learning_rate(const ScheduleOptions& options, double t);

/// The milestones actually used (explicit, or the paper's 1/3 and 2/3 of the run).
std::vector<int64_t> effective_milestones(const ScheduleOptions& options);

}  // namespace splitshare::train
