#include <splitshare/train/schedule.h>

#include <cmath>

namespace splitshare::train {

std::string to_string(ScheduleKind kind) { return kind == ScheduleKind::kStep ? "step" : "cosine"; }

ScheduleKind parse_schedule_kind(const std::string& text) {
  if (text == "step") return ScheduleKind::kStep;
  if (text == "cosine") return ScheduleKind::kCosine;
  TORCH_CHECK(false, "unknown schedule '", text, "': expected step or cosine");
}

std::vector<int64_t> effective_milestones(const ScheduleOptions& o) {
  if (!o.milestones().empty()) return o.milestones();
  const auto e = static_cast<double>(o.epochs());
  return {static_cast<int64_t>(std::lround(e * 30.0 / 90.0)), static_cast<int64_t>(std::lround(e * 60.0 / 90.0))};
}

double learning_rate(const ScheduleOptions& o, double t) {
  if (o.warmup_epochs() > 0 && t < o.warmup_epochs()) return o.base_lr() * t / o.warmup_epochs();
  if (o.kind() == ScheduleKind::kCosine) {
    const double span = std::max(1e-9, static_cast<double>(o.epochs()) - o.warmup_epochs());
    const double progress = std::min(1.0, std::max(0.0, (t - o.warmup_epochs()) / span));
    return 0.5 * o.base_lr() * (1.0 + std::cos(M_PI * progress));
  }
  double lr = o.base_lr();
  for (auto m : effective_milestones(o)) {
    if (t >= static_cast<double>(m)) lr *= o.gamma();
  }
  return lr;
}

}  // namespace splitshare::train
