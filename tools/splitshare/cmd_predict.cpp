#include "splitshare/commands.h"
#include "splitshare/common.h"

#include <splitshare/eval/predict.h>
#include <splitshare/train/checkpoint.h>
#include <splitshare/util/files.h>

#include <cstdio>

namespace splitshare::cli {
namespace {

// The preprocessed batch as a file Python reads with torch.load (a debugging aid).
void write_inputs(const std::vector<eval::Prediction>& predictions, const std::string& path) {
  std::vector<torch::Tensor> inputs;
  for (const auto& p : predictions) inputs.push_back(p.input);
  const auto bytes = torch::pickle_save(torch::stack(inputs));
  util::write_file_atomic(path, std::string(bytes.begin(), bytes.end()));
}

void print_table(const std::vector<eval::Prediction>& predictions) {
  for (const auto& p : predictions) {
    std::printf("%s\n", p.path.c_str());
    for (size_t j = 0; j < p.topk.size(); ++j) {
      const auto& s = p.topk[j];
      std::printf("  %2zu. %-24s %7.2f%%  (class %lld)\n", j + 1, s.label.c_str(), 100 * s.probability,
                  static_cast<long long>(s.index));
    }
  }
}

}  // namespace

int run_predict(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Classify image files (JPEG, PNG) with a checkpoint and its own preprocessing");
  options.add_options()
      ("checkpoint", "checkpoint file", cxxopts::value<std::string>())
      ("images", "image files", cxxopts::value<std::vector<std::string>>())
      ("topk", "classes listed per image", cxxopts::value<int64_t>()->default_value("5"))
      ("batch-size", "images classified together", cxxopts::value<int64_t>()->default_value("16"))
      ("size", "input side for checkpoints that record no resize, crop or size (0 = from the checkpoint)",
       cxxopts::value<int64_t>()->default_value("0"))
      ("dump-inputs", "also write the preprocessed images [N, C, H, W] to this file (Python: torch.load)",
       cxxopts::value<std::string>())
      ("json", "print JSON");
  add_thread_option(options);
  add_inference_precision_option(options);
  options.parse_positional({"images"});
  options.positional_help("IMAGE...");
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("images"), "no image files given");
  configure_threads(*args);
  const auto dtype = inference_dtype(*args);
  const auto topk = (*args)["topk"].as<int64_t>();
  TORCH_CHECK(topk >= 1, "--topk must be positive, got ", topk);
  const auto batch = (*args)["batch-size"].as<int64_t>();
  TORCH_CHECK(batch >= 1, "--batch-size must be positive, got ", batch);
  const auto size = (*args)["size"].as<int64_t>();
  TORCH_CHECK(size >= 0, "--size must be >= 0, got ", size);

  auto loaded = train::load_checkpoint((*args)["checkpoint"].as<std::string>());
  auto preprocess = loaded.metadata.preprocess;
  if (size > 0) preprocess.size = size;
  const auto predictions = eval::predict_files(
      *loaded.model, preprocess, loaded.metadata.classes, (*args)["images"].as<std::vector<std::string>>(),
      eval::PredictOptions().topk(topk).batch_size(batch).keep_inputs(args->count("dump-inputs") > 0).dtype(dtype));
  if (args->count("dump-inputs")) write_inputs(predictions, (*args)["dump-inputs"].as<std::string>());

  if (args->count("json")) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : predictions) list.push_back(eval::to_json(p));
    std::printf("%s\n", nlohmann::json{{"predictions", list}}.dump(2).c_str());
  } else {
    print_table(predictions);
  }
  return 0;
}

}  // namespace splitshare::cli
