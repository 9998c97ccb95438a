#include <splitshare/explain/colormap.h>
#include <splitshare/explain/figure.h>
#include "bitmap_text.h"

#include <cstdio>

namespace splitshare::explain {
namespace {

constexpr int64_t kMargin = 6;
constexpr int64_t kGap = 6;
constexpr Rgb kInk = {30, 30, 30};
constexpr Rgb kDimInk = {110, 110, 110};

std::string class_name(const std::vector<std::string>& classes, int64_t index) {
  if (index >= 0 && index < static_cast<int64_t>(classes.size())) return classes[index];
  return "class " + std::to_string(index);
}

std::string probability_text(double p) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "p=%.3f", p);
  return buf;
}

torch::Tensor enlarge(const torch::Tensor& image, int64_t factor) {
  if (factor == 1) return image;
  return image.repeat_interleave(factor, 1).repeat_interleave(factor, 2);
}

void paste(torch::Tensor& canvas, const torch::Tensor& rgb, int64_t x, int64_t y) {
  canvas.narrow(1, y, rgb.size(1)).narrow(2, x, rgb.size(2)).copy_(rgb);
}

}  // namespace

torch::Tensor denormalize(const torch::Tensor& images, const std::vector<double>& mean,
                          const std::vector<double>& std) {
  TORCH_CHECK(images.dim() == 4, "denormalize: expected images [N, C, H, W], got ", images.sizes());
  const int64_t c = images.size(1);
  TORCH_CHECK(static_cast<int64_t>(mean.size()) == c && static_cast<int64_t>(std.size()) == c,
              "denormalize: ", c, "-channel images need ", c, " means and stds, got ", mean.size(), " and ",
              std.size());
  const auto m = torch::tensor(mean, torch::kFloat32).view({1, c, 1, 1});
  const auto s = torch::tensor(std, torch::kFloat32).view({1, c, 1, 1});
  const auto x = images.detach().to(torch::kCPU, torch::kFloat32).contiguous();
  return ((x * s + m) * 255.0).round().clamp(0, 255).to(torch::kUInt8);
}

int64_t display_scale(int64_t height, int64_t width, const FigureOptions& options) {
  const int64_t side = std::max<int64_t>(1, std::max(height, width));
  return std::max<int64_t>(1, (options.min_size() + side - 1) / side);
}

torch::Tensor cam_overlay(const torch::Tensor& image, const torch::Tensor& map, const FigureOptions& options) {
  TORCH_CHECK(image.dim() == 3 && image.scalar_type() == torch::kUInt8,
              "cam_overlay: expected a uint8 image [C, H, W], got ", image.sizes(), " ", image.scalar_type());
  TORCH_CHECK(map.dim() == 2, "cam_overlay: expected a map [h, w], got ", map.sizes());
  const int64_t f = display_scale(image.size(1), image.size(2), options);
  const int64_t height = image.size(1) * f, width = image.size(2) * f;
  const auto heat = normalize_maps(upsample_maps(map.detach().to(torch::kCPU).unsqueeze(0), height, width))[0];
  return overlay_heatmap(enlarge(image.to(torch::kCPU), f), heat, options.image_weight());
}

std::vector<std::string> cam_column_titles(const HeadCams& cams) {
  std::vector<std::string> titles = {"input", "whole model"};
  const bool all_channels = !cams.head_channels.empty() && cams.head_channels[0].end == cams.head_channels.back().end;
  for (size_t j = 0; j < cams.head_channels.size(); ++j) {
    const auto& r = cams.head_channels[j];
    titles.push_back(all_channels ? "head " + std::to_string(j + 1)
                                  : "split " + std::to_string(j + 1) + "  ch " + std::to_string(r.begin) + "-" +
                                        std::to_string(r.end - 1));
  }
  return titles;
}

torch::Tensor render_cam_grid(const torch::Tensor& display, const HeadCams& cams,
                              const std::vector<std::string>& classes, const torch::Tensor& labels,
                              const FigureOptions& options) {
  TORCH_CHECK(display.dim() == 4 && display.scalar_type() == torch::kUInt8,
              "render_cam_grid: expected uint8 images [N, C, H, W], got ", display.sizes(), " ",
              display.scalar_type());
  const int64_t n = display.size(0);
  TORCH_CHECK(cams.whole.defined() && cams.whole.size(0) == n, "render_cam_grid: ", n,
              " images but maps for ", cams.whole.defined() ? cams.whole.size(0) : 0);
  TORCH_CHECK(!labels.defined() || (labels.dim() == 1 && labels.size(0) == n), "render_cam_grid: expected labels [",
              n, "], got ", labels.sizes());
  const int64_t f = display_scale(display.size(2), display.size(3), options);
  const int64_t cell_h = display.size(2) * f, cell_w = display.size(3) * f;
  const int64_t ts = cell_w >= 256 ? 2 : 1;
  const int64_t line = kLineHeight * ts;
  const auto titles = cam_column_titles(cams);
  const int64_t columns = static_cast<int64_t>(titles.size());
  const int64_t header = line + 4;
  const int64_t caption = 2 * line + 4;
  const int64_t width = 2 * kMargin + columns * cell_w + (columns - 1) * kGap;
  const int64_t height = 2 * kMargin + header + n * (cell_h + caption) + std::max<int64_t>(0, n - 1) * kGap;
  auto canvas = torch::full({3, height, width}, 255, torch::kUInt8);

  const int64_t text_w = cell_w;
  for (int64_t c = 0; c < columns; ++c) {
    draw_text(canvas, fit_text(titles[c], text_w, ts), kMargin + c * (cell_w + kGap), kMargin, kInk, ts);
  }
  const auto targets = cams.targets.to(torch::kCPU);
  const auto predictions = cams.probabilities.argmax(1).to(torch::kCPU);
  for (int64_t i = 0; i < n; ++i) {
    const int64_t top = kMargin + header + i * (cell_h + caption + kGap);
    const int64_t text_y = top + cell_h + 3;
    const auto image = display[i];
    const int64_t target = targets[i].item<int64_t>();
    auto column_x = [&](int64_t c) { return kMargin + c * (cell_w + kGap); };

    paste(canvas, enlarge(image, f).expand({3, cell_h, cell_w}), column_x(0), top);
    const std::string truth = labels.defined() ? "true: " + class_name(classes, labels[i].item<int64_t>()) : "no label";
    draw_text(canvas, fit_text(truth, text_w, ts), column_x(0), text_y, kInk, ts);
    draw_text(canvas, fit_text("pred: " + class_name(classes, predictions[i].item<int64_t>()), text_w, ts),
              column_x(0), text_y + line, kDimInk, ts);

    auto map_cell = [&](int64_t c, const torch::Tensor& map, const torch::Tensor& probabilities) {
      paste(canvas, cam_overlay(image, map[i], options), column_x(c), top);
      const auto p = probabilities[i].to(torch::kCPU);
      const int64_t best = p.argmax().item<int64_t>();
      std::string second = probability_text(p[target].item<double>());
      if (best != target) second += ", top: " + class_name(classes, best);
      draw_text(canvas, fit_text(class_name(classes, target), text_w, ts), column_x(c), text_y, kInk, ts);
      draw_text(canvas, fit_text(second, text_w, ts), column_x(c), text_y + line, kDimInk, ts);
    };
    map_cell(1, cams.whole, cams.probabilities);
    for (size_t j = 0; j < cams.heads.size(); ++j) {
      map_cell(2 + static_cast<int64_t>(j), cams.heads[j], cams.head_probabilities[j]);
    }
  }
  return canvas;
}

torch::Tensor validation_grid(nn::ClassifierImpl& model, data::BatchStream& stream,
                              const data::Preprocess& preprocess, const std::vector<std::string>& classes,
                              int64_t count, CamMethod method, const FigureOptions& options) {
  TORCH_CHECK(count >= 1, "validation_grid: count must be at least 1, got ", count);
  std::vector<torch::Tensor> images, labels;
  int64_t have = 0;
  stream.reset(0);
  while (have < count) {
    auto batch = stream.next();
    if (!batch) break;
    const int64_t take = std::min(count - have, batch->labels.size(0));
    images.push_back(batch->images.narrow(0, 0, take).contiguous());
    labels.push_back(batch->labels.narrow(0, 0, take));
    have += take;
  }
  stream.reset(0);
  TORCH_CHECK(have > 0, "validation_grid: the validation stream yielded no samples");
  const auto batch_images = torch::cat(images);
  const auto batch_labels = torch::cat(labels);
  const auto params = model.parameters();
  const auto device = params.empty() ? torch::Device(torch::kCPU) : params[0].device();
  auto cams = explain_heads(model, batch_images.to(device), batch_labels.to(device), method);
  return render_cam_grid(denormalize(batch_images, preprocess.mean, preprocess.std), cams, classes, batch_labels,
                         options);
}

}  // namespace splitshare::explain
