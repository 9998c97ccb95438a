#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/export/quantize.h>
#include <splitshare/util/progress.h>

#include <cstdio>

namespace splitshare::cli {
namespace {

void print_summary(const train::QuantizeSummary& s, const std::string& out, bool json) {
  if (json) {
    std::printf("%s\n", nlohmann::json({{"out", out},
                                        {"quantization", train::to_json(s.record)},
                                        {"checked", s.checked},
                                        {"agreement", s.agreement},
                                        {"max_relative_difference", s.max_relative_difference}})
                            .dump(2)
                            .c_str());
    return;
  }
  std::printf("wrote %s: int8 backbone (uint8 activations per tensor, int8 weights per output channel), %zu "
              "activation ranges from %lld calibration images\n",
              out.c_str(), s.record.ranges.size(), static_cast<long long>(s.record.images));
  if (s.checked > 0) {
    std::printf("on %lld further images: top class as the float model's for %.2f%%, largest logit difference %.3g of "
                "the largest logit\n",
                static_cast<long long>(s.checked), 100 * s.agreement, s.max_relative_difference);
  }
  std::printf("run it with: splitshare eval --checkpoint %s   (predict and export --format onnx take it too)\n",
              out.c_str());
}

}  // namespace

int run_quantize(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Post-training static int8 quantization of a checkpoint: BatchNorm folded, int8 "
                                    "weights per output\nchannel, uint8 activations calibrated on images; the head "
                                    "runs in float32");
  const train::QuantizeOptions defaults;
  const data::DataOptions data_defaults;
  options.add_options()
      ("checkpoint", "checkpoint to quantize", cxxopts::value<std::string>())
      ("calibrate", "calibration data, training split (forms as eval's --data; default: the data the checkpoint "
                    "was trained on)", cxxopts::value<std::string>())
      ("out", "checkpoint file to write", cxxopts::value<std::string>())
      ("calibration-images", "images whose activation ranges set the int8 scales",
       number<int64_t>()->default_value(text(defaults.images())))
      ("check-images", "further images on which int8 is compared with float (0: none)",
       number<int64_t>()->default_value(text(defaults.check_images())))
      ("batch-size", "calibration batch size", number<int64_t>()->default_value("64"))
      ("workers", "image decoding threads (image folders)", number<int64_t>()->default_value(text(data_defaults.workers())))
      ("seed", "seed of the order the calibration images are drawn in", number<uint64_t>()->default_value("0"))
      ("no-progress", "no progress bar")
      ("json", "print a JSON report");
  add_thread_option(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("out"), "--out is required");
  const auto checkpoint = (*args)["checkpoint"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  const auto images = (*args)["calibration-images"].as<int64_t>();
  TORCH_CHECK(images >= 1, "--calibration-images must be positive, got ", images);
  const auto check = (*args)["check-images"].as<int64_t>();
  TORCH_CHECK(check >= 0, "--check-images must be >= 0, got ", check);
  const auto batch = (*args)["batch-size"].as<int64_t>();
  TORCH_CHECK(batch >= 1, "--batch-size must be positive, got ", batch);
  const auto workers = (*args)["workers"].as<int64_t>();
  TORCH_CHECK(workers >= 0, "--workers must be >= 0, got ", workers);
  configure_threads(*args);
  const auto metadata = train::read_checkpoint_metadata(checkpoint);
  const auto data_text = args->count("calibrate") ? (*args)["calibrate"].as<std::string>()
                                                  : recorded_data(checkpoint, "quantize", "--calibrate", "fashion-mnist");
  const auto spec = data::parse_data_spec(data_text);
  auto data_opts = data::DataOptions().batch_size(batch).workers(workers).seed((*args)["seed"].as<uint64_t>());
  follow_run_data(checkpoint, data_opts);
  // The training split, transformed as for evaluation: the images the model was fitted to.
  auto bundle = data::open_data(spec, data::evaluation_options(data_opts, metadata.preprocess));
  util::ProgressBar bar("calibrate", images, !args->count("no-progress"));
  const auto summary = train::quantize_checkpoint(
      checkpoint, *bundle.train, out,
      train::QuantizeOptions().images(images).check_images(check).data(data_text),
      [&](int64_t done, int64_t total) { bar.update(done, std::to_string(done) + "/" + std::to_string(total)); });
  bar.finish(std::to_string(summary.record.images) + " images");
  print_summary(summary, out, args->count("json") > 0);
  return 0;
}

}  // namespace splitshare::cli
