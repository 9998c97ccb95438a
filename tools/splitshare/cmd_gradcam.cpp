#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/explain/gradcam_folder.h>

#include <cstdio>

namespace splitshare::cli {

int run_gradcam(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Grad-CAM of the whole model and of each sub-classifier restricted to its own split of "
                           "channels (paper Section 5, Figure 2). Writes an overlay PNG per map, grid.png (rows: "
                           "images; columns: input, whole model, split 1..S) and gradcam.json (map statistics)");
  options.positional_help("IMAGES...");
  options.add_options()
      ("checkpoint", "checkpoint file", cxxopts::value<std::string>())
      ("images", "image files (JPEG or PNG)", paths())
      ("data", "explain images of this dataset's validation split instead (same forms as train --data)",
       cxxopts::value<std::string>())
      ("count", "--data: number of images", number<int64_t>()->default_value("4"))
      ("first", "--data: index of the first image", number<int64_t>()->default_value("0"))
      ("target", "class explained: label (true class), pred (the model's prediction), or a class name or index "
                 "(auto: label with --data, pred for files)",
       cxxopts::value<std::string>()->default_value("auto"))
      ("method", "gradcam | gradcampp (Grad-CAM++)", cxxopts::value<std::string>()->default_value("gradcam"))
      ("size", "input side for checkpoints that record no input size (files only)",
       number<int64_t>()->default_value("0"))
      ("min-size", "images smaller than this are enlarged (integer factor) in the PNGs",
       number<int64_t>()->default_value("128"))
      ("out", "output folder (default: a new runs/gradcam-<date>-<n>)", cxxopts::value<std::string>());
  add_overwrite_option(options);
  add_thread_option(options);
  options.parse_positional({"images"});
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  configure_threads(*args);
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  const bool from_data = args->count("data") > 0;
  TORCH_CHECK(from_data != (args->count("images") > 0),
              from_data ? "give either image files or --data, not both" : "give image files or --data DATASET");
  const auto method = explain::parse_cam_method((*args)["method"].as<std::string>());
  const auto figure = explain::FigureOptions().min_size((*args)["min-size"].as<int64_t>());
  TORCH_CHECK(figure.min_size() >= 1, "--min-size must be positive, got ", figure.min_size());
  const std::string checkpoint = (*args)["checkpoint"].as<std::string>();
  const std::string out = args->count("out") ? (*args)["out"].as<std::string>() : run::fresh_folder("runs/gradcam");
  const auto claim = claim_output(*args, out, "gradcam", /*continue_existing=*/false);

  auto loaded = train::load_checkpoint(checkpoint);
  auto& metadata = loaded.metadata;
  const auto size = in_range<int64_t>(*args, "size", 0, 16384);
  if (size > 0) metadata.preprocess.size = size;
  const auto in = from_data ? explain::inputs_from_data((*args)["data"].as<std::string>(),
                                                        in_range<int64_t>(*args, "first", 0, INT64_MAX),
                                                        in_range<int64_t>(*args, "count", 1, 4096),
                                                        metadata)
                             : explain::inputs_from_files((*args)["images"].as<std::vector<std::string>>(), metadata);
  const auto targets = explain::resolve_targets((*args)["target"].as<std::string>(), in, metadata.classes,
                                                metadata.model.num_classes(), from_data);
  auto cams = explain::explain_heads(*loaded.model, in.images, targets, method);

  const auto written = explain::write_gradcam_folder(out, cams, method, in, metadata, loaded.model->feature_dim(),
                                                     figure, checkpoint, (*args)["target"].as<std::string>());
  std::printf("%lld images, %lld maps (%s): %s/grid.png, %s/gradcam.json\n", static_cast<long long>(in.images.size(0)),
              static_cast<long long>(written), explain::to_string(method).c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace splitshare::cli
