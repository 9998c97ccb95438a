#include <splitshare/explain/gradcam_folder.h>

#include <splitshare/data/datasets.h>
#include <splitshare/eval/predict.h>
#include <splitshare/image/png.h>
#include <splitshare/util/files.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>

namespace splitshare::explain {
namespace {

namespace fs = std::filesystem;

std::string safe_stem(const std::string& text) {
  std::string out;
  for (char c : text) out += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  return out.empty() ? "image" : out.substr(0, 60);
}

int64_t class_index(const std::vector<std::string>& classes, const std::string& name) {
  for (size_t i = 0; i < classes.size(); ++i) {
    if (classes[i] == name) return static_cast<int64_t>(i);
  }
  return -1;
}

std::string class_name(const std::vector<std::string>& classes, int64_t index) {
  return index >= 0 && index < static_cast<int64_t>(classes.size()) ? classes[index] : std::to_string(index);
}

}  // namespace

ExplainInputs inputs_from_files(const std::vector<std::string>& paths, const train::CheckpointMetadata& metadata) {
  ExplainInputs in;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> labels;
  bool all_labelled = true;
  for (size_t i = 0; i < paths.size(); ++i) {
    images.push_back(eval::load_image(paths[i], metadata.preprocess));
    in.sources.push_back(paths[i]);
    in.stems.push_back(safe_stem(fs::path(paths[i]).stem().string()));
    // An image folder's layout names the class: DIR/<class>/<file>.
    const int64_t label = class_index(metadata.classes, fs::path(paths[i]).parent_path().filename().string());
    all_labelled = all_labelled && label >= 0;
    labels.push_back(label);
  }
  for (size_t i = 1; i < images.size(); ++i) {
    TORCH_CHECK(images[i].sizes() == images[0].sizes(), paths[i], " preprocesses to ", images[i].sizes(), " but ",
                paths[0], " to ", images[0].sizes());
  }
  in.images = torch::stack(images);
  if (all_labelled) in.labels = torch::tensor(labels, torch::kLong);
  return in;
}

ExplainInputs inputs_from_data(const std::string& spec_text, int64_t first, int64_t count,
                        const train::CheckpointMetadata& metadata) {
  TORCH_CHECK(first >= 0, "--first must be >= 0, got ", first);
  TORCH_CHECK(count >= 1, "--count must be at least 1, got ", count);
  // The training split only feeds the normalisation statistics, which are undone below.
  auto options =
      data::DataOptions().augment(false).limit_train(256).limit_val(first + count).eval_batch_size(first + count);
  if (metadata.preprocess.crop) options.image_size(*metadata.preprocess.crop);
  // Photos resized the way the model was evaluated (the paper's square or the shorter side).
  options.photo_recipe(data::photo_recipe_of(metadata.preprocess));
  auto bundle = data::open_data(data::parse_data_spec(spec_text), options);
  TORCH_CHECK(bundle.preprocess.channels == metadata.preprocess.channels, spec_text, " has ",
              bundle.preprocess.channels, "-channel images but the checkpoint expects ", metadata.preprocess.channels);
  bundle.val->reset(0);
  auto batch = bundle.val->next();
  TORCH_CHECK(batch && batch->labels.size(0) > first, spec_text, ": the validation split has no sample ", first);
  const int64_t n = std::min(count, batch->labels.size(0) - first);
  // Back to pixels with the bundle's statistics, then normalised as the checkpoint was trained.
  const auto pixels = denormalize(batch->images.narrow(0, first, n), bundle.preprocess.mean,
                                           bundle.preprocess.std);
  const auto& p = metadata.preprocess;
  const auto c = static_cast<int64_t>(p.mean.size());
  TORCH_CHECK(c == pixels.size(1) && static_cast<int64_t>(p.std.size()) == c, "the checkpoint's preprocessing has ",
              p.mean.size(), " means for ", pixels.size(1), "-channel images");
  const auto mean = torch::tensor(p.mean, torch::kFloat32).view({1, c, 1, 1});
  const auto std = torch::tensor(p.std, torch::kFloat32).view({1, c, 1, 1});
  ExplainInputs in;
  in.images = (pixels.to(torch::kFloat32) / 255.0 - mean) / std;
  in.labels = batch->labels.narrow(0, first, n).clone();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t index = batch->indices.defined() ? batch->indices[first + i].item<int64_t>() : first + i;
    in.sources.push_back(spec_text + "[" + std::to_string(index) + "]");
    in.stems.push_back("val" + std::to_string(index));
  }
  return in;
}

torch::Tensor resolve_targets(const std::string& target, const ExplainInputs& in, const std::vector<std::string>& classes,
                              int64_t num_classes, bool from_data) {
  const int64_t n = in.images.size(0);
  const std::string mode = target == "auto" ? (from_data ? "label" : "pred") : target;
  if (mode == "pred") return {};
  if (mode == "label") {
    TORCH_CHECK(in.labels.defined(), "--target label: the true class of every image must be known; image files "
                "must sit in a folder named after their class (one of the checkpoint's classes). Use --target pred "
                "or --target CLASS");
    return in.labels;
  }
  int64_t index = class_index(classes, mode);
  if (index < 0 && !mode.empty() && mode.find_first_not_of("0123456789") == std::string::npos) {
    index = std::stoll(mode);
  }
  TORCH_CHECK(index >= 0 && index < num_classes, "--target '", target, "' is not label, pred, a class name of "
              "the checkpoint or a class index in 0..", num_classes - 1);
  return torch::full({n}, index, torch::kLong);
}

int64_t write_gradcam_folder(const std::string& out, const HeadCams& cams, CamMethod method, const ExplainInputs& in,
                             const train::CheckpointMetadata& metadata, int64_t feature_channels,
                             const FigureOptions& figure, const std::string& checkpoint, const std::string& target) {
  std::error_code ec;
  fs::create_directories(out, ec);
  TORCH_CHECK(!ec && fs::is_directory(out), "gradcam: cannot create folder ", out, ": ", ec.message());
  const auto display = denormalize(in.images, metadata.preprocess.mean, metadata.preprocess.std);
  const auto titles = cam_column_titles(cams);
  const int64_t height = display.size(2), width = display.size(3);
  const auto predictions = cams.probabilities.argmax(1);

  nlohmann::json images = nlohmann::json::array();
  int64_t written = 0;
  for (int64_t i = 0; i < display.size(0); ++i) {
    char prefix[32];
    std::snprintf(prefix, sizeof prefix, "%02lld-", static_cast<long long>(i));
    const std::string base = prefix + in.stems[i];
    const int64_t target = cams.targets[i].item<int64_t>();
    nlohmann::json maps = nlohmann::json::array();
    auto emit = [&](const std::string& name, const std::string& title, const torch::Tensor& map,
                    const ChannelRange& channels, const torch::Tensor& probabilities) {
      const std::string file = base + "-" + name + ".png";
      data::write_png((fs::path(out) / file).string(), cam_overlay(display[i], map[i], figure));
      ++written;
      maps.push_back({{"name", name},
                      {"title", title},
                      {"channels", {channels.begin, channels.end}},
                      {"probability", probabilities[i][target].item<double>()},
                      {"prediction", probabilities[i].argmax().item<int64_t>()},
                      {"file", file},
                      {"stats", to_json(map_stats(map[i], height, width))}});
    };
    const int64_t f = display_scale(height, width, figure);
    data::write_png((fs::path(out) / (base + "-input.png")).string(),
                       display[i].repeat_interleave(f, 1).repeat_interleave(f, 2));
    emit("whole", titles[1], cams.whole, {0, feature_channels}, cams.probabilities);
    const bool ssm = metadata.model.head().kind() == nn::HeadKind::kSSM;
    for (size_t j = 0; j < cams.heads.size(); ++j) {
      emit((ssm ? "split" : "head") + std::to_string(j + 1), titles[2 + j], cams.heads[j], cams.head_channels[j],
           cams.head_probabilities[j]);
    }
    nlohmann::json entry = {{"source", in.sources[i]},
                            {"input", base + "-input.png"},
                            {"target", target},
                            {"target_name", class_name(metadata.classes, target)},
                            {"prediction", predictions[i].item<int64_t>()},
                            {"prediction_name", class_name(metadata.classes, predictions[i].item<int64_t>())},
                            {"maps", maps}};
    if (in.labels.defined()) {
      entry["label"] = in.labels[i].item<int64_t>();
      entry["label_name"] = class_name(metadata.classes, in.labels[i].item<int64_t>());
    }
    images.push_back(entry);
  }
  data::write_png((fs::path(out) / "grid.png").string(),
                     render_cam_grid(display, cams, metadata.classes, in.labels, figure));
  const nlohmann::json report = {{"checkpoint", checkpoint},
                                 {"method", to_string(method)},
                                 {"target", target},
                                 {"feature_channels", feature_channels},
                                 {"map_size", {cams.whole.size(1), cams.whole.size(2)}},
                                 {"input_size", {height, width}},
                                 {"grid", "grid.png"},
                                 {"images", images}};
  util::write_file_atomic((fs::path(out) / "gradcam.json").string(), report.dump(2) + "\n");
  return written;
}

}  // namespace splitshare::explain
