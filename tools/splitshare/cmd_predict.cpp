#include "splitshare/commands.h"
#include "splitshare/options.h"

#include <splitshare/eval/predict.h>
#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/util/files.h>

#include <splitshare/util/progress.h>
#include <splitshare/util/signals.h>

#include <cstdio>
#include <filesystem>
#include <optional>

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

// Unreadable images skipped: a count and their names on stderr.
void report_skipped(const eval::PredictRun& run) {
  if (!run.skipped) return;
  std::fprintf(stderr, "splitshare predict: skipped %lld unreadable image(s):\n", static_cast<long long>(run.skipped));
  for (const auto& r : run.skipped_reports) std::fprintf(stderr, "  %s\n", r.c_str());
  if (run.skipped > static_cast<int64_t>(run.skipped_reports.size())) std::fprintf(stderr, "  ...\n");
}

// Where --output goes: CSV or JSON lines by the file's extension, one row per image as it
// comes, published whole at the end (util::StreamedFile: an error or a stop leaves no file).
class OutputFile {
 public:
  OutputFile(const std::string& path, int64_t topk, int64_t heads, const std::vector<std::string>& classes)
      : file_(path, "--output"), classes_(classes), csv_(extension_of(path) == ".csv") {
    if (csv_) file_.write(eval::csv_header(topk, heads) + "\n");
  }
  static std::string extension_of(const std::string& path) {
    const auto dot = path.rfind('.');
    const std::string ext = dot == std::string::npos ? "" : path.substr(dot);
    TORCH_CHECK(ext == ".csv" || ext == ".jsonl", "--output ", path, ": expected a .csv or .jsonl file name");
    return ext;
  }
  void write(const eval::Prediction& p) {
    file_.write((csv_ ? eval::csv_row(p, classes_) : eval::to_json(p).dump()) + "\n");
  }
  void close() { file_.commit(); }

 private:
  util::StreamedFile file_;
  std::vector<std::string> classes_;
  bool csv_ = true;
};

// A stop request (SIGINT, SIGTERM) between batches: predict ends without output.
struct Stopped {
  int signal;
};

eval::PredictOptions predict_options(const cxxopts::ParseResult& args) {
  const auto topk = args["topk"].as<int64_t>();
  TORCH_CHECK(topk >= 1, "--topk must be positive, got ", topk);
  const auto batch = args["batch-size"].as<int64_t>();
  TORCH_CHECK(batch >= 1, "--batch-size must be positive, got ", batch);
  const auto workers = args["workers"].as<int64_t>();
  TORCH_CHECK(workers >= 0, "--workers must be >= 0, got ", workers);
  return eval::PredictOptions().topk(topk).batch_size(batch).workers(workers).strict(args.count("strict") > 0)
      .keep_inputs(args.count("dump-inputs") > 0).dtype(inference_dtype(args, torch::Device(torch::kCPU))).flip_tta(tta_flip(args));
}

// --output and --dump-inputs: never one of the images or the checkpoint; --output's kind
// checked before any image is read.
void check_outputs(const cxxopts::ParseResult& args, const std::vector<std::string>& paths,
                   const std::string& checkpoint) {
  auto inputs = paths;
  inputs.push_back(checkpoint);
  for (const std::string flag : {"output", "dump-inputs"}) {
    if (!args.count(flag)) continue;
    util::check_not_an_input(args[flag].as<std::string>(), inputs, "--" + flag);
    if (flag == "output") OutputFile::extension_of(args[flag].as<std::string>());
  }
}

// The predictions on stdout: JSON, or the table unless they went to --output.
void print_results(const cxxopts::ParseResult& args, const std::vector<eval::Prediction>& kept,
                   const eval::PredictRun& run) {
  if (args.count("json")) {
    nlohmann::json list = nlohmann::json::array();
    for (const auto& p : kept) list.push_back(eval::to_json(p));
    nlohmann::json out = {{"predictions", list}};
    if (run.skipped) out["skipped"] = run.skipped_reports;
    std::printf("%s\n", out.dump(2).c_str());
  } else if (!args.count("output")) {
    print_table(kept);
  }
}

}  // namespace

int run_predict(int argc, char** argv) {
  cxxopts::Options options(argv[0], "Classify images (files, folders, @LIST files) with a checkpoint and its own "
                                    "preprocessing");
  options.add_options()
      ("checkpoint", "checkpoint file", cxxopts::value<std::string>())
      ("images", "image files, folders (recursive, sorted) or @LIST (a file listing them)", paths())
      ("topk", "classes listed per image", number<int64_t>()->default_value("5"))
      ("batch-size", "images classified together", number<int64_t>()->default_value("16"))
      ("workers", "decoding threads (0 = the main thread)", number<int64_t>()->default_value("2"))
      ("output", "write one row per image to FILE.csv or FILE.jsonl (JSON lines: the --json record)",
       cxxopts::value<std::string>())
      ("strict", "stop at the first unreadable image instead of skipping it")
      ("size", "input side for checkpoints that record no resize, crop or size (0 = from the checkpoint)",
       number<int64_t>()->default_value("0"))
      ("dump-inputs", "also write the preprocessed images [N, C, H, W] to this file (Python: torch.load)",
       cxxopts::value<std::string>())
      ("no-progress", "no progress bar")
      ("json", "print JSON");
  add_thread_option(options);
  add_inference_precision_option(options);
  add_tta_option(options);
  options.parse_positional({"images"});
  options.positional_help("IMAGE|FOLDER|@LIST...");
  auto args = parse(options, argc, argv);
  if (!args) return 0;
  TORCH_CHECK(args->count("checkpoint"), "--checkpoint is required");
  TORCH_CHECK(args->count("images"), "no image files given");
  configure_threads(*args);
  const auto popts = predict_options(*args);
  const auto size = (*args)["size"].as<int64_t>();
  TORCH_CHECK(size >= 0, "--size must be >= 0, got ", size);
  const auto checkpoint = (*args)["checkpoint"].as<std::string>();
  auto loaded = train::load_checkpoint(checkpoint);
  loaded.model->eval();
  const auto model = inference_model(*args, loaded, popts.dtype(), "predict");
  const auto paths = eval::expand_image_arguments((*args)["images"].as<std::vector<std::string>>());
  check_outputs(*args, paths, checkpoint);
  const util::StopSignals signals;
  auto preprocess = loaded.metadata.preprocess;
  if (size > 0) preprocess.size = size;
  const auto& classes = loaded.metadata.classes;
  std::optional<OutputFile> output;
  std::vector<eval::Prediction> kept;
  const bool keep = !args->count("output") || args->count("json") || args->count("dump-inputs");
  util::ProgressBar bar("predict", static_cast<int64_t>(paths.size()), !args->count("no-progress") && paths.size() > 64);
  eval::PredictRun run;
  try {
    run = eval::predict_paths(*model, preprocess, classes, paths, popts,
      [&](std::vector<eval::Prediction>& batch) {
        if (signals.pending()) throw Stopped{signals.pending()};
        for (auto& p : batch) {
          if (args->count("output")) {
            if (!output) output.emplace((*args)["output"].as<std::string>(), popts.topk(),
                                        static_cast<int64_t>(p.head_logits.size()), classes);
            output->write(p);
          }
          if (keep) kept.push_back(std::move(p));
        }
      },
      [&](int64_t done, int64_t total) { bar.update(done, std::to_string(done) + "/" + std::to_string(total)); });
    if (signals.pending()) throw Stopped{signals.pending()};
  } catch (const Stopped& stop) {
    output.reset();
    std::fprintf(stderr, "\nsplitshare predict: stopped by signal %d; no output written\n", stop.signal);
    return 128 + stop.signal;
  }
  bar.finish(std::to_string(run.predicted) + " images");
  if (output) output->close();
  report_skipped(run);
  TORCH_CHECK(run.predicted > 0 || paths.empty(), "no image could be read (", run.skipped, " skipped",
              run.skipped_reports.empty() ? std::string() : ", first: " + run.skipped_reports[0], ")");
  if (args->count("dump-inputs") && !kept.empty()) write_inputs(kept, (*args)["dump-inputs"].as<std::string>());
  print_results(*args, kept, run);
  return 0;
}

}  // namespace splitshare::cli
