#include <splitshare/checkpoint/checkpoint.h>

#include "module_tree.h"
#include "pickle_memo.h"

#include <splitshare/data/preprocess_json.h>
#include <splitshare/util/files.h>

#include <caffe2/serialize/inline_container.h>
#include <torch/script.h>

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <type_traits>
#include <vector>

namespace splitshare::train {
namespace {

constexpr const char* kMetadataFile = "splitshare.json";
constexpr const char* kFormat = "splitshare-checkpoint";
constexpr int kVersion = 2;
// Checkpoints without a gate keep version 1, so builds from before gates still read them.
constexpr int kVersionWithoutGate = 1;

template <typename T>
T field(const nlohmann::json& json, const char* key, const std::string& source) {
  TORCH_CHECK(json.contains(key), source, ": checkpoint metadata has no '", key, "' field");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // nlohmann would convert 1e300 by a cast that overflows.
    TORCH_CHECK(json.at(key).is_number_integer(), source, ": checkpoint metadata field '", key,
                "' must be an integer, got ", json.at(key).dump());
  }
  try {
    return json.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": checkpoint metadata field '", key, "' has the wrong type: ", e.what());
  }
}

template <typename T>
T optional_field(const nlohmann::json& json, const char* key, T fallback, const std::string& source) {
  if (!json.contains(key)) return fallback;
  return field<T>(json, key, source);
}

// `parse()`, with `source` put in front of a refusal that does not name it.
template <typename Parse>
auto named(const std::string& source, Parse parse) {
  try {
    return parse();
  } catch (const c10::Error& e) {
    const std::string message = e.what_without_backtrace();
    if (message.find(source) != std::string::npos) throw;
    TORCH_CHECK(false, source, ": checkpoint metadata: ", message);
  }
}

// Bounds of the metadata fields that size allocations, far above any real model (torchvision's
// widest first stage has 64 channels; ImageNet-21K has 21,841 classes), so that an edited file
// is refused by field instead of failing in the allocator.
constexpr int64_t kMaxImageSide = 16384;
constexpr int64_t kMaxWidth = 4096;
constexpr int64_t kMaxClasses = 1000000;

// A positive image size, or null (absent) for "not used".
std::optional<int64_t> optional_size(const nlohmann::json& json, const char* key, const std::string& source) {
  if (!json.contains(key) || json.at(key).is_null()) return std::nullopt;
  const auto value = field<int64_t>(json, key, source);
  TORCH_CHECK(value >= 1, source, ": checkpoint metadata field 'preprocess.", key, "' must be positive, got ", value);
  // A side past this is an edited or damaged file, not a model: refused before any image of
  // that size is allocated.
  TORCH_CHECK(value <= kMaxImageSide, source, ": checkpoint metadata field 'preprocess.", key, "' is ", value,
              " pixels, more than the ", kMaxImageSide, " a model input may have");
  return value;
}

// Ranges of the model fields; the architecture name itself is checked when the model is built.
void check_model_fields(const nn::ClassifierOptions& model, const std::string& source) {
  std::vector<std::string> problems;
  auto require = [&](bool ok, const std::string& problem) {
    if (!ok) problems.push_back(problem);
  };
  require(model.num_classes() >= 1, "num_classes " + std::to_string(model.num_classes()) + " (must be >= 1)");
  require(model.in_channels() == 1 || model.in_channels() == 3,
          "in_channels " + std::to_string(model.in_channels()) + " (must be 1 or 3)");
  require(model.width() >= 1 && model.width() <= kMaxWidth,
          "width " + std::to_string(model.width()) + " (must be 1.." + std::to_string(kMaxWidth) + ")");
  require(model.num_classes() <= kMaxClasses,
          "num_classes " + std::to_string(model.num_classes()) + " (must be <= " + std::to_string(kMaxClasses) + ")");
  require(model.head().splits() >= 1, "splits " + std::to_string(model.head().splits()) + " (must be >= 1)");
  require(model.head().k() >= 1, "k " + std::to_string(model.head().k()) + " (must be >= 1)");
  if (problems.empty()) return;
  std::string list;
  for (const auto& problem : problems) list += (list.empty() ? "" : ", ") + problem;
  TORCH_CHECK(false, source, ": checkpoint metadata has invalid values: ", list);
}

void check_preprocess(const data::Preprocess& p, const std::string& source) {
  TORCH_CHECK(p.channels == 1 || p.channels == 3, source, ": checkpoint metadata field 'preprocess.channels' is ",
              p.channels, ", expected 1 or 3");
  // Both empty: no normalisation recorded (a model saved by the library without data);
  // predict refuses such a checkpoint when it needs the values.
  const bool recorded = !p.mean.empty() || !p.std.empty();
  TORCH_CHECK(!recorded || (static_cast<int64_t>(p.mean.size()) == p.channels &&
                            static_cast<int64_t>(p.std.size()) == p.channels),
              source, ": checkpoint metadata 'preprocess' has ", p.mean.size(), " means and ", p.std.size(),
              " standard deviations for ", p.channels, " channels");
  for (double s : p.std) {
    TORCH_CHECK(s > 0, source, ": checkpoint metadata 'preprocess.std' holds ", s, " (must be positive)");
  }
}

nn::GateOptions gate_from_json(const nlohmann::json& g, const std::string& source) {
  TORCH_CHECK(g.is_object(), source, ": checkpoint metadata field 'gate' is not a JSON object");
  nn::GateOptions gate(field<int64_t>(g, "heads", source), field<int64_t>(g, "features", source),
                       field<int64_t>(g, "classes", source));
  gate.input(named(source, [&] { return nn::parse_gate_input(field<std::string>(g, "input", source)); }))
      .hidden(field<int64_t>(g, "hidden", source))
      .hard(field<bool>(g, "hard", source));
  TORCH_CHECK(gate.heads() >= 2 && gate.features() >= 1 && gate.classes() >= 1 && gate.hidden() >= 0, source,
              ": checkpoint metadata field 'gate' has invalid sizes: ", g.dump());
  return gate;
}

}  // namespace

nlohmann::json to_json(const CheckpointMetadata& m) {
  const auto& o = m.model;
  nlohmann::json j;
  j["format"] = kFormat;
  j["version"] = o.gate() ? kVersion : kVersionWithoutGate;
  j["arch"] = o.arch();
  j["head"] = nn::to_string(o.head().kind());
  j["splits"] = o.head().kind() == nn::HeadKind::kSSM ? o.head().splits() : 1;
  j["k"] = o.head().kind() == nn::HeadKind::kKFC ? o.head().k() : 1;
  j["last_plain"] = o.head().last_plain();
  j["reduction"] = o.head().sum() ? "sum" : "mean";
  j["num_classes"] = o.num_classes();
  j["classes"] = m.classes;
  j["stem"] = nn::to_string(o.stem());
  j["in_channels"] = o.in_channels();
  j["width"] = o.width();
  if (o.gate()) {
    const auto& g = *o.gate();
    j["gate"] = {{"input", nn::to_string(g.input())}, {"hidden", g.hidden()},     {"hard", g.hard()},
                 {"heads", g.heads()},                {"features", g.features()}, {"classes", g.classes()}};
  }
  j["preprocess"] = data::to_json(m.preprocess);
  j["epoch"] = m.epoch;
  j["extra"] = m.extra;
  return j;
}

CheckpointMetadata metadata_from_json(const nlohmann::json& j, const std::string& source) {
  TORCH_CHECK(j.is_object(), source, ": checkpoint metadata is not a JSON object");
  const auto format = j.contains("format") && j.at("format").is_string() ? j.at("format").get<std::string>() : "";
  TORCH_CHECK(format == kFormat, source, ": not a splitshare checkpoint (format '", format, "', expected '", kFormat,
              "')");
  const auto version = field<int>(j, "version", source);
  TORCH_CHECK(version <= kVersion, source, ": checkpoint format version ", version,
              " is newer than this build understands (", kVersion, ")");
  CheckpointMetadata m;
  nn::HeadOptions head;
  head.kind(named(source, [&] { return nn::parse_head_kind(field<std::string>(j, "head", source)); }));
  head.splits(field<int64_t>(j, "splits", source));
  head.k(field<int64_t>(j, "k", source));
  head.last_plain(optional_field<bool>(j, "last_plain", false, source));
  const auto reduction = optional_field<std::string>(j, "reduction", "mean", source);
  TORCH_CHECK(reduction == "mean" || reduction == "sum", source, ": checkpoint metadata field 'reduction' is '",
              reduction, "', expected mean or sum");
  head.sum(reduction == "sum");
  m.model.arch(field<std::string>(j, "arch", source))
      .num_classes(field<int64_t>(j, "num_classes", source))
      .head(head)
      .stem(named(source, [&] { return nn::parse_stem(field<std::string>(j, "stem", source)); }))
      .in_channels(field<int64_t>(j, "in_channels", source))
      .width(field<int64_t>(j, "width", source));
  check_model_fields(m.model, source);
  if (j.contains("gate") && !j.at("gate").is_null()) m.model.gate(gate_from_json(j.at("gate"), source));
  m.classes = field<std::vector<std::string>>(j, "classes", source);
  TORCH_CHECK(m.classes.empty() || static_cast<int64_t>(m.classes.size()) == m.model.num_classes(), source,
              ": metadata lists ", m.classes.size(), " class names for num_classes=", m.model.num_classes());
  const auto p = field<nlohmann::json>(j, "preprocess", source);
  TORCH_CHECK(p.is_object(), source, ": checkpoint metadata field 'preprocess' is not a JSON object");
  m.preprocess.channels = field<int64_t>(p, "channels", source);
  // `size` is absent in checkpoints written before it was recorded.
  m.preprocess.resize = optional_size(p, "resize", source);
  // Checkpoints from before the paper's recipe resized the shorter side.
  m.preprocess.resize_mode = named(source, [&] {
    return data::parse_resize_mode(optional_field<std::string>(p, "resize_mode", "shorter", source));
  });
  m.preprocess.crop = optional_size(p, "crop", source);
  m.preprocess.size = optional_size(p, "size", source);
  m.preprocess.mean = field<std::vector<double>>(p, "mean", source);
  m.preprocess.std = field<std::vector<double>>(p, "std", source);
  check_preprocess(m.preprocess, source);
  m.epoch = optional_field<int64_t>(j, "epoch", 0, source);
  TORCH_CHECK(m.epoch >= 0, source, ": checkpoint metadata field 'epoch' is negative (", m.epoch, ")");
  m.extra = j.contains("extra") ? j.at("extra") : nlohmann::json::object();
  return m;
}

void save_checkpoint(nn::ClassifierImpl& model, const CheckpointMetadata& metadata, const std::string& path,
                     const std::map<std::string, std::string>& extra_files) {
  TORCH_CHECK(metadata.model.gate().has_value() == static_cast<bool>(model.gate),
              "save_checkpoint: the metadata ", metadata.model.gate() ? "describes a gate the model lacks" : "has no gate",
              model.gate ? " but the model has one" : "", " (", path, ")");
  detail::ModuleTree builder("__torch__.splitshare.Checkpoint", "__torch__.splitshare.Node");
  // On the CPU and contiguous: what Python's torch.jit.load and state_dict() read back.
  for (const auto& item : model.named_parameters()) {
    builder.add(nn::export_name(item.key()), item.value().detach().to(torch::kCPU).contiguous(), false);
  }
  for (const auto& item : model.named_buffers()) {
    builder.add(nn::export_name(item.key()), item.value().detach().to(torch::kCPU).contiguous(), true);
  }
  torch::jit::ExtraFilesMap extra{{kMetadataFile, to_json(metadata).dump(2)}};
  for (const auto& [name, bytes] : extra_files) {
    TORCH_CHECK(name != kMetadataFile, "save_checkpoint: extra file name ", name, " is reserved");
    extra[name] = bytes;
  }

  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  // Serialised in memory first, so that every byte reaches the disk through one checked
  // write path (util::write_file_atomic reports a full disk naming the file).
  std::ostringstream archive;
  builder.root.save(archive, extra);
  util::write_file_atomic(path, archive.str());
}

std::optional<std::string> read_checkpoint_file(const std::string& path, const std::string& name) {
  TORCH_CHECK(std::filesystem::exists(path), "checkpoint not found: ", path);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    const std::string record = "extra/" + name;
    if (!reader.hasRecord(record)) return std::nullopt;
    auto [data, size] = reader.getRecord(record);
    return std::string(static_cast<const char*>(data.get()), size);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": not a readable torch archive (truncated or not a checkpoint): ",
                e.msg().substr(0, e.msg().find('\n')));
  }
  return std::nullopt;
}

namespace {

torch::jit::Module open_archive(const std::string& path, torch::jit::ExtraFilesMap& extra) {
  TORCH_CHECK(std::filesystem::exists(path), "checkpoint not found: ", path);
  TORCH_CHECK(std::filesystem::is_regular_file(path), "checkpoint is not a regular file: ", path);
  check_archive_pickles(path);
  try {
    return torch::jit::load(path, torch::kCPU, extra);
  } catch (const std::exception& e) {
    std::string what = e.what();
    TORCH_CHECK(false, path, ": not a readable torch archive (truncated or not a checkpoint): ",
                what.substr(0, what.find('\n')));
  }
}

}  // namespace

CheckpointMetadata read_checkpoint_metadata(const std::string& path) {
  torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
  open_archive(path, extra);
  const auto& text = extra[kMetadataFile];
  TORCH_CHECK(!text.empty(), path, ": torch archive without splitshare metadata (", kMetadataFile,
              "); import foreign weights with `splitshare import`");
  return parse_checkpoint_metadata(text, path);
}

std::vector<std::string> model_differences(const nn::ClassifierOptions& expected, const nn::ClassifierOptions& found) {
  std::vector<std::string> out;
  auto compare = [&](const char* what, const auto& a, const auto& b) {
    if (a == b) return;
    std::ostringstream text;
    text << what << ": expected " << a << ", found " << b;
    out.push_back(text.str());
  };
  const auto& eh = expected.head();
  const auto& fh = found.head();
  compare("arch", expected.arch(), found.arch());
  compare("head", nn::to_string(eh.kind()), nn::to_string(fh.kind()));
  if (eh.kind() == fh.kind() && eh.kind() == nn::HeadKind::kSSM) {
    compare("splits", eh.splits(), fh.splits());
    compare("last_plain", eh.last_plain(), fh.last_plain());
  }
  if (eh.kind() == fh.kind() && eh.kind() == nn::HeadKind::kKFC) compare("k", eh.k(), fh.k());
  compare("num_classes", expected.num_classes(), found.num_classes());
  compare("in_channels", expected.in_channels(), found.in_channels());
  compare("width", expected.width(), found.width());
  compare("stem", nn::to_string(expected.stem()), nn::to_string(found.stem()));
  auto gate = [](const nn::ClassifierOptions& o) {
    return o.gate() ? nn::to_string(o.gate()->input()) + " gate" : std::string("no gate");
  };
  compare("gate", gate(expected), gate(found));
  return out;
}

CheckpointMetadata parse_checkpoint_metadata(const std::string& text, const std::string& source) {
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, source, ": checkpoint metadata is not valid JSON: ", e.what());
  }
  return metadata_from_json(json, source);
}

std::map<std::string, torch::Tensor> read_archive_tensors(const std::string& path) {
  torch::jit::ExtraFilesMap extra;
  auto module = open_archive(path, extra);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) tensors[item.name] = item.value;
  for (const auto& item : module.named_buffers(/*recurse=*/true)) tensors[item.name] = item.value;
  return tensors;
}

LoadedCheckpoint load_checkpoint(const std::string& path, torch::Device device) {
  LoadedCheckpoint loaded;
  loaded.metadata = read_checkpoint_metadata(path);
  try {
    loaded.model = nn::make_classifier(loaded.metadata.model);
  } catch (const c10::Error& e) {
    TORCH_CHECK(false, path, ": metadata describes a model that cannot be built: ", e.msg());
  }
  auto mismatch = nn::load_state(*loaded.model, read_archive_tensors(path));
  TORCH_CHECK(mismatch.ok(), path, ": tensors do not match the model in its metadata (",
              loaded.metadata.model.arch(), ", head ", nn::to_string(loaded.metadata.model.head().kind()), ", ",
              loaded.metadata.model.num_classes(), " classes):\n", mismatch.describe());
  loaded.model->to(device);
  loaded.quantization = read_quantization(path);
  loaded.path = path;
  return loaded;
}

namespace {

constexpr const char* kStateFile = "training_state.json";
constexpr const char* kStateTensorsFile = "training_state.pt";

}  // namespace

std::map<std::string, std::string> training_state_files(const TrainingState& state) {
  nlohmann::json j = {{"epoch", state.epoch},
                      {"consumed", state.consumed},
                      {"step", state.step},
                      {"global_step", state.global_step},
                      {"world_size", state.world_size},
                      {"batch_size", state.batch_size},
                      {"config", state.config},
                      {"history", state.history},
                      {"best_top1", state.best_top1},
                      {"best_epoch", state.best_epoch},
                      {"seconds", state.seconds},
                      {"epoch_progress", state.epoch_progress},
                      {"amp", state.amp}};
  c10::List<at::Tensor> tensors;
  tensors.push_back(state.cpu_rng.defined() ? state.cpu_rng : torch::empty({0}, torch::kUInt8));
  // "momentum" keeps the key of checkpoints that held SGD momentum only.
  for (const auto& [key, map] : {std::pair{"momentum", &state.optimizer_state}, std::pair{"ema", &state.ema}}) {
    std::vector<std::string> names;
    for (const auto& [name, tensor] : *map) {
      names.push_back(name);
      tensors.push_back(tensor.detach().to(torch::kCPU).contiguous());
    }
    j[key] = names;
  }
  const auto bytes = torch::pickle_save(c10::IValue(tensors));
  return {{kStateFile, j.dump(1)}, {kStateTensorsFile, std::string(bytes.begin(), bytes.end())}};
}

std::optional<TrainingState> read_training_state(const std::string& path) {
  auto text = read_checkpoint_file(path, kStateFile);
  if (!text) return std::nullopt;
  auto bytes = read_checkpoint_file(path, kStateTensorsFile);
  TORCH_CHECK(bytes, path, ": has ", kStateFile, " but no ", kStateTensorsFile);
  TrainingState state;
  try {
    const auto j = nlohmann::json::parse(*text);
    state.epoch = j.at("epoch").get<int64_t>();
    state.consumed = j.at("consumed").get<int64_t>();
    state.step = j.at("step").get<int64_t>();
    state.global_step = j.at("global_step").get<int64_t>();
    state.world_size = j.at("world_size").get<int64_t>();
    state.batch_size = j.at("batch_size").get<int64_t>();
    state.config = j.at("config");
    state.history = j.at("history");
    state.best_top1 = j.at("best_top1").get<double>();
    state.best_epoch = j.at("best_epoch").get<int64_t>();
    state.seconds = j.at("seconds").get<double>();
    state.epoch_progress = j.at("epoch_progress");
    state.amp = j.value("amp", nlohmann::json::object());
    const auto names = j.at("momentum").get<std::vector<std::string>>();
    const auto ema_names = j.value("ema", std::vector<std::string>());
    auto tensors = torch::pickle_load(std::vector<char>(bytes->begin(), bytes->end())).toTensorList();
    const size_t expected = 1 + names.size() + ema_names.size();
    TORCH_CHECK(tensors.size() == expected, path, ": ", kStateTensorsFile, " holds ", tensors.size(),
                " tensors, expected ", expected);
    state.cpu_rng = tensors.get(0);
    for (size_t i = 0; i < names.size(); ++i) state.optimizer_state[names[i]] = tensors.get(i + 1);
    for (size_t i = 0; i < ema_names.size(); ++i) state.ema[ema_names[i]] = tensors.get(1 + names.size() + i);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": training state ", kStateFile, " is malformed: ", e.what());
  }
  return state;
}

}  // namespace splitshare::train
