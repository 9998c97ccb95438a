#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/import.h>

#include <cstdio>
#include <fstream>

namespace splitshare::cli {
namespace {

std::vector<std::string> read_labels(const std::string& path) {
  std::ifstream in(path);
  TORCH_CHECK(in.is_open(), "cannot open --labels file ", path);
  std::vector<std::string> labels;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    labels.push_back(line);
  }
  TORCH_CHECK(!in.bad(), "error reading --labels file ", path);
  while (!labels.empty() && labels.back().empty()) labels.pop_back();
  TORCH_CHECK(!labels.empty(), "--labels file ", path, " lists no class names");
  return labels;
}

}  // namespace

int run_import(int argc, char** argv) {
  cxxopts::Options options(argv[0],
                           "Turn weights saved from Python (torchvision) into a splitshare checkpoint.\n"
                           "  scripted: torch.jit.script(torchvision.models.resnet50(weights=\"DEFAULT\")).save(\"w.pt\")\n"
                           "  state dict: torch.save(dict(torchvision.models.resnet50(weights=\"DEFAULT\").state_dict()), "
                           "\"w.pt\")\n"
                           "--arch auto (the default) infers the architecture from the tensor names and shapes.");
  options.add_options()
      ("weights", "file written by torch.jit.save or torch.save (a dict of tensors)", cxxopts::value<std::string>())
      ("out", "checkpoint to write", cxxopts::value<std::string>())
      ("classes", "classes of the new model (0 = the weights' classifier's, or the --labels count)",
       number<int64_t>()->default_value("0"))
      ("labels", "class names, one per line", cxxopts::value<std::string>())
      ("image-size", "evaluation crop; images are resized to image-size/0.875 first (torchvision: 256 -> 224)",
       number<int64_t>()->default_value("224"))
      ("non-strict", "load the backbone tensors that match and report the rest instead of failing")
      ("seed", "seed of the initialisation of a head that is not loaded", number<uint64_t>()->default_value("0"))
      ("json", "print a JSON report");
  add_model_options(options);
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("weights"), "--weights is required");
  TORCH_CHECK(args->count("out"), "--out is required");
  const auto weights = (*args)["weights"].as<std::string>();
  const auto out = (*args)["out"].as<std::string>();
  auto classes = (*args)["classes"].as<int64_t>();
  TORCH_CHECK(classes >= 0, "--classes must be >= 0, got ", classes);
  const auto image_size = (*args)["image-size"].as<int64_t>();
  TORCH_CHECK(image_size >= 1, "--image-size must be positive, got ", image_size);

  std::vector<std::string> labels;
  if (args->count("labels")) labels = read_labels((*args)["labels"].as<std::string>());
  if (classes == 0 && !labels.empty()) classes = static_cast<int64_t>(labels.size());
  auto model = model_options(*args, classes, 3, /*small_images=*/false);
  if ((*args)["arch"].as<std::string>() == "auto") model.arch("auto");

  auto result = train::import_weights(weights, train::ImportOptions()
                                                   .model(model)
                                                   .classes(labels)
                                                   .preprocess(train::imagenet_preprocess(image_size))
                                                   .strict(args->count("non-strict") == 0)
                                                   .seed((*args)["seed"].as<uint64_t>()));
  train::save_checkpoint(*result.model, result.metadata, out);

  const auto& m = result.metadata.model;
  const auto& report = result.report;
  if (args->count("json")) {
    nlohmann::json json = {{"out", out},
                           {"arch", m.arch()},
                           {"format", train::to_string(result.format)},
                           {"head", nn::to_string(m.head().kind())},
                           {"num_classes", m.num_classes()},
                           {"copied", report.copied},
                           {"head_loaded", report.head_loaded},
                           {"source_classes", report.source_classes},
                           {"unused", report.unused},
                           {"notices", report.notices}};
    std::printf("%s\n", json.dump(2).c_str());
  } else {
    for (const auto& notice : report.notices) std::fprintf(stderr, "notice: %s\n", notice.c_str());
    std::printf("%s (%s) -> %s: %s, %s head (%s), %lld classes, %lld tensors loaded\n", weights.c_str(),
                train::to_string(result.format).c_str(), out.c_str(), m.arch().c_str(),
                nn::to_string(m.head().kind()).c_str(), report.head_loaded ? "loaded" : "new",
                static_cast<long long>(m.num_classes()), static_cast<long long>(report.copied));
  }
  return 0;
}

}  // namespace splitshare::cli
