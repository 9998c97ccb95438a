#include <splitshare/eval/predict.h>

#include <splitshare/data/image_folder.h>
#include <splitshare/image/decode.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace splitshare::eval {
namespace {

namespace fs = std::filesystem;

// A folder's image files, recursively, sorted by path.
std::vector<std::string> folder_images(const std::string& folder) {
  std::vector<std::string> out;
  std::error_code error;
  fs::recursive_directory_iterator it(folder, fs::directory_options::follow_directory_symlink, error);
  TORCH_CHECK(!error, "cannot list folder ", folder, ": ", error.message());
  for (; it != fs::recursive_directory_iterator(); it.increment(error)) {
    TORCH_CHECK(!error, "cannot list folder ", folder, ": ", error.message());
    std::error_code kind;
    if (it->is_regular_file(kind) && data::has_image_extension(it->path().string())) out.push_back(it->path().string());
  }
  std::sort(out.begin(), out.end());
  TORCH_CHECK(!out.empty(), "folder ", folder, " holds no image files (.jpg/.png/.bmp/.ppm/.pgm/.webp)");
  return out;
}

void expand_one(const std::string& argument, std::vector<std::string>& out, int depth, const std::string& where);

// The entries of list file `list` (one per line; blank lines and '#' comments skipped), each
// expanded; errors name the list and the line.
void expand_list(const std::string& list, std::vector<std::string>& out, int depth, const std::string& where) {
  TORCH_CHECK(depth < 4, where, "list @", list, ": lists nested more than 4 deep");
  std::error_code error;
  TORCH_CHECK(!fs::is_directory(list, error), where, "@", list, " is a folder, not a list file: give the folder "
              "without '@' to classify its images");
  TORCH_CHECK(fs::exists(list, error), where, "no such list of images: @", list);
  std::ifstream in(list);
  TORCH_CHECK(in, where, "cannot read the list of images @", list);
  std::string line;
  const auto before = out.size();
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    // A nested list's errors keep the chain: where the outer list named it, then its own line.
    expand_one(line, out, depth + 1, where + "list " + list + " line " + std::to_string(number) + ": ");
  }
  TORCH_CHECK(out.size() > before, where, "the list @", list, " names no images (blank lines and '#' comments are "
              "skipped)");
}

void expand_one(const std::string& argument, std::vector<std::string>& out, int depth, const std::string& where) {
  if (argument.size() > 1 && argument[0] == '@') return expand_list(argument.substr(1), out, depth, where);
  std::error_code error;
  if (fs::is_directory(argument, error)) {
    const auto images = folder_images(argument);
    out.insert(out.end(), images.begin(), images.end());
    return;
  }
  const bool relative = fs::path(argument).is_relative() && !where.empty();
  TORCH_CHECK(fs::exists(argument, error), where, "no such image file or folder: ", argument,
              relative ? " (relative paths in a list are taken from the current folder, " + fs::current_path().string()
                             + ")" : std::string());
  out.push_back(argument);
}

// The loader's options that reproduce load_image's transform for `preprocess`.
data::ImageFolderOptions loader_transform(const data::Preprocess& preprocess) {
  data::ImageFolderOptions o;
  o.channels(preprocess.channels).mean(preprocess.mean).std(preprocess.std).dct_reducing_gap(0);
  o.report_to_stderr(false);  // predict names the skipped files itself, once
  if (preprocess.resize || preprocess.crop) {
    const int64_t crop = preprocess.crop.value_or(*preprocess.resize);
    o.image_size(crop).resize(preprocess.resize.value_or(crop));
    o.recipe(preprocess.resize_mode == data::ResizeMode::kSquare ? data::PhotoRecipe::kPaper
                                                                  : data::PhotoRecipe::kTorchvision);
  } else {
    TORCH_CHECK(preprocess.size && *preprocess.size >= 1, "the checkpoint's preprocessing records no resize, crop "
                "or size, so the input resolution is unknown (pass --size N)");
    // The whole image to size x size: the paper recipe's square resize with a crop of all of it.
    o.image_size(*preprocess.size).resize(*preprocess.size).recipe(data::PhotoRecipe::kPaper);
  }
  return o;
}

}  // namespace

std::vector<std::string> expand_image_arguments(const std::vector<std::string>& arguments) {
  std::vector<std::string> out;
  for (const auto& argument : arguments) expand_one(argument, out, 0, "");
  return out;
}

PredictRun predict_paths(nn::ClassifierImpl& model, const data::Preprocess& preprocess,
                         const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                         const PredictOptions& options, const std::function<void(std::vector<Prediction>&)>& on_batch,
                         const std::function<void(int64_t, int64_t)>& on_progress) {
  model.eval();
  return predict_paths(nn::InferenceModel(model, nn::InferenceOptions().dtype(options.dtype())), preprocess, classes,
                       paths, options, on_batch, on_progress);
}

PredictRun predict_paths(const nn::Predictor& model, const data::Preprocess& preprocess,
                         const std::vector<std::string>& classes, const std::vector<std::string>& paths,
                         const PredictOptions& options, const std::function<void(std::vector<Prediction>&)>& on_batch,
                         const std::function<void(int64_t, int64_t)>& on_progress) {
  TORCH_CHECK(options.batch_size() >= 1, "predict: batch_size must be positive, got ", options.batch_size());
  TORCH_CHECK(options.workers() >= 0, "predict: workers must be >= 0, got ", options.workers());
  PredictRun run;
  if (paths.empty()) return run;
  data::ImageFolderIndex index;
  index.classes = {"unlabelled"};
  index.paths = paths;
  index.labels.assign(paths.size(), 0);
  data::ImageFolderLoader loader(std::move(index), loader_transform(preprocess),
                                 data::LoaderOptions().batch_size(options.batch_size()).workers(options.workers())
                                     .strict(options.strict()));
  loader.reset(0);
  int64_t done = 0;
  while (auto batch = loader.next()) {
    auto part = predict(model, batch->images, classes, options);
    for (size_t i = 0; i < part.size(); ++i) part[i].path = paths[static_cast<size_t>(batch->indices[i].item<int64_t>())];
    run.predicted += static_cast<int64_t>(part.size());
    done += batch->images.size(0);
    on_batch(part);
    if (on_progress) on_progress(std::min<int64_t>(done + loader.skipped(), static_cast<int64_t>(paths.size())),
                                 static_cast<int64_t>(paths.size()));
  }
  run.skipped = loader.skipped();
  run.skipped_reports = loader.skipped_reports();
  return run;
}

std::string csv_header(int64_t topk, int64_t heads) {
  std::string header = "path";
  for (int64_t j = 1; j <= topk; ++j) header += ",label_" + std::to_string(j) + ",prob_" + std::to_string(j);
  for (int64_t h = 1; h <= heads; ++h) header += ",head_" + std::to_string(h);
  return header;
}

namespace {

// RFC 4180 quoting when a field holds a comma, quote or line break.
std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  std::string quoted = "\"";
  for (char c : text) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}

}  // namespace

std::string csv_row(const Prediction& p, const std::vector<std::string>& classes) {
  std::ostringstream row;
  row.precision(6);
  row << csv_field(p.path);
  for (const auto& s : p.topk) row << ',' << csv_field(s.label) << ',' << s.probability;
  for (const auto& head : p.head_logits) {
    const auto index = head.argmax().item<int64_t>();
    row << ',' << csv_field(index < static_cast<int64_t>(classes.size()) ? classes[static_cast<size_t>(index)]
                                                                         : std::to_string(index));
  }
  return row.str();
}

}  // namespace splitshare::eval
