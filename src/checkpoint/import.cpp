#include <splitshare/checkpoint/import.h>

#include "pickle_memo.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/serialize.h>

#include <splitshare/util/files.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <set>
#include <sstream>

namespace splitshare::train {
namespace {

// Long lists in error messages are cut after this many names per kind of problem.
constexpr size_t kListedNames = 25;
constexpr const char* kZipMagic = "PK\x03\x04";
constexpr const char* kDataParallelPrefix = "module.";

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

std::string error_text(const std::exception& e) {
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) return first_line(c10_error->msg());
  return first_line(e.what());
}

std::string leading_bytes(const std::string& path, size_t count) {
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in.is_open(), "cannot open weights file ", path);
  std::string bytes(count, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(count));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

std::string hex(const std::string& bytes) {
  std::string out;
  char buffer[4];
  for (unsigned char c : bytes) {
    std::snprintf(buffer, sizeof buffer, "%02x", c);
    if (!out.empty()) out += ' ';
    out += buffer;
  }
  return out;
}

// Whether a pickle's top-level object is a collections.OrderedDict (what state_dict() returns):
// after the PROTO opcode it starts with GLOBAL 'collections OrderedDict' instead of EMPTY_DICT.
bool pickles_ordered_dict(const char* data, size_t size) {
  const std::string head(data, std::min<size_t>(size, 32));
  const size_t start = !head.empty() && static_cast<unsigned char>(head[0]) == 0x80 ? 2 : 0;
  const std::string global = "ccollections\nOrderedDict\n";
  return head.size() >= start + global.size() && head.compare(start, global.size(), global) == 0;
}

std::map<std::string, torch::Tensor> read_state_dict(const std::string& path, bool ordered_dict) {
  // libtorch's unpickler turns collections.OrderedDict into None (it only expects one as a
  // tensor's backward hooks), so a state_dict() saved as is cannot be read.
  TORCH_CHECK(!ordered_dict, path,
              ": holds an OrderedDict (torch.save(model.state_dict())), which libtorch cannot read; save a plain "
              "dict instead: torch.save(dict(model.state_dict()), \"", path, "\")");
  torch::IValue value;
  try {
    const auto bytes = util::read_file(path, "weights file");
    value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, ": cannot unpickle the torch.save archive: ", error_text(e));
  }
  TORCH_CHECK(!value.isNone(), path, ": holds None, expected a dict {name: tensor}");
  TORCH_CHECK(value.isGenericDict(), path, ": holds a ", value.tagKind(),
              ", expected a dict {name: tensor} (torch.save(dict(model.state_dict()), path))");
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& entry : value.toGenericDict()) {
    TORCH_CHECK(entry.key().isString(), path, ": dict key of type ", entry.key().tagKind(), ", expected names");
    const auto& name = entry.key().toStringRef();
    TORCH_CHECK(!entry.value().isGenericDict(), path, ": entry '", name,
                "' is a nested dict; save the state dict itself, e.g. torch.save(dict(checkpoint['", name,
                "']), path)");
    TORCH_CHECK(entry.value().isTensor(), path, ": entry '", name, "' is a ", entry.value().tagKind(),
                ", expected a tensor");
    tensors[name] = entry.value().toTensor();
  }
  TORCH_CHECK(!tensors.empty(), path, ": the dict holds no tensors");
  return tensors;
}

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_head_name(const std::string& name) { return name.rfind("fc.", 0) == 0 || name.rfind("bn.", 0) == 0; }

std::string describe_head(const nn::ClassifierOptions& options) {
  const auto& head = options.head();
  std::ostringstream out;
  out << nn::to_string(head.kind()) << " head";
  if (head.kind() == nn::HeadKind::kSSM) out << " (" << head.splits() << " splits)";
  if (head.kind() == nn::HeadKind::kKFC) out << " (k=" << head.k() << ")";
  return out.str();
}

std::string describe_tensors(const std::map<std::string, torch::Tensor>& tensors) {
  std::ostringstream out;
  size_t listed = 0;
  for (const auto& [name, tensor] : tensors) {
    if (listed == 4) {
      out << ", …";
      break;
    }
    out << (listed++ ? ", " : "") << name << " " << tensor.sizes();
  }
  return out.str();
}

std::string describe_capped(const nn::StateMismatch& mismatch) {
  std::ostringstream out;
  auto list = [&](const char* what, const std::vector<std::string>& names) {
    if (names.empty()) return;
    out << what << " (" << names.size() << "):";
    for (size_t i = 0; i < std::min(names.size(), kListedNames); ++i) out << "\n  " << names[i];
    if (names.size() > kListedNames) out << "\n  … and " << names.size() - kListedNames << " more";
    out << "\n";
  };
  list("missing keys", mismatch.missing);
  list("unexpected keys", mismatch.unexpected);
  list("shape mismatches", mismatch.wrong_shape);
  return out.str();
}

std::map<std::string, torch::Tensor> named_tensors(torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& item : module.named_parameters()) out[item.key()] = item.value();
  for (const auto& item : module.named_buffers()) out[item.key()] = item.value();
  return out;
}

// Drops DataParallel's "module." when every name has it.
std::map<std::string, torch::Tensor> without_data_parallel_prefix(const std::map<std::string, torch::Tensor>& weights,
                                                                 const std::string& source,
                                                                 std::vector<std::string>& notices) {
  const std::string prefix = kDataParallelPrefix;
  const bool all_prefixed = !weights.empty() && std::all_of(weights.begin(), weights.end(), [&](const auto& item) {
    return item.first.rfind(prefix, 0) == 0;
  });
  if (!all_prefixed) return weights;
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : weights) out[name.substr(prefix.size())] = tensor;
  notices.push_back(source + ": dropped the '" + prefix + "' prefix (a DataParallel model) from every name");
  return out;
}

// Drops a head-selection gate (`gate.*`, splitshare select): it was fitted to the heads it came
// with, which training changes.
std::map<std::string, torch::Tensor> without_gate(std::map<std::string, torch::Tensor> weights,
                                                  const std::string& source, std::vector<std::string>& notices) {
  size_t dropped = 0;
  for (auto it = weights.begin(); it != weights.end();) {
    const bool gate = it->first.rfind("gate.", 0) == 0;
    dropped += gate ? 1 : 0;
    it = gate ? weights.erase(it) : std::next(it);
  }
  if (dropped > 0) {
    notices.push_back(source + ": its head-selection gate (" + std::to_string(dropped) +
                      " gate.* tensors) is not carried over; run `splitshare select` on the new model");
  }
  return weights;
}

// Backbone tensors: every one of the model's must be in the weights with its shape.
nn::StateMismatch copy_backbone(nn::ClassifierImpl& model, const std::map<std::string, torch::Tensor>& weights,
                                int64_t& copied) {
  nn::StateMismatch mismatch;
  torch::NoGradGuard no_grad;
  const auto own = named_tensors(*model.backbone);
  for (const auto& [name, tensor] : own) {
    auto it = weights.find(name);
    if (it == weights.end()) {
      // Files from before PyTorch 0.4.1 have no BatchNorm counters; they are not weights.
      if (!ends_with(name, ".num_batches_tracked")) mismatch.missing.push_back(name);
    } else if (it->second.sizes() != tensor.sizes()) {
      std::ostringstream msg;
      msg << name << ": expected " << tensor.sizes() << ", got " << it->second.sizes();
      mismatch.wrong_shape.push_back(msg.str());
    } else {
      tensor.copy_(it->second);
      ++copied;
    }
  }
  for (const auto& [name, _] : weights) {
    if (!is_head_name(name) && !own.count(name)) mismatch.unexpected.push_back(name);
  }
  return mismatch;
}

// The head is all or nothing: copied when the weights hold exactly its tensors.
void copy_head(nn::ClassifierImpl& model, const std::map<std::string, torch::Tensor>& weights,
               const std::string& source, TransferReport& report) {
  std::map<std::string, torch::Tensor> theirs;
  for (const auto& [name, tensor] : weights) {
    if (is_head_name(name)) theirs[name] = tensor;
  }
  const auto own = named_tensors(*model.head.ptr());
  const auto head = describe_head(model.options);
  const auto classes = model.options.num_classes();
  auto mark_unused = [&] {
    for (const auto& item : theirs) report.unused.push_back(item.first);
  };
  if (theirs.empty()) {
    report.notices.push_back(source + " holds no classifier (fc.*): the " + head + " starts from a fresh initialisation");
    return;
  }
  bool same_names = theirs.size() == own.size();
  for (const auto& item : own) same_names = same_names && theirs.count(item.first);
  if (!same_names) {
    mark_unused();
    report.notices.push_back(source + ": its classifier (" + describe_tensors(theirs) + ") does not fit the " + head +
                             ": the head starts from a fresh initialisation");
    return;
  }
  for (const auto& [name, tensor] : own) {
    const auto& other = theirs.at(name);
    if (other.sizes() == tensor.sizes()) continue;
    mark_unused();
    std::ostringstream msg;
    if (report.source_classes != classes) {
      msg << source << ": its classifier has " << report.source_classes << " classes, the model " << classes
          << ": the " << head << " is re-initialised (fine-tuning to new classes)";
    } else {
      msg << source << ": classifier tensor " << name << " is " << other.sizes() << ", the " << head << " needs "
          << tensor.sizes() << ": the head is re-initialised";
    }
    report.notices.push_back(msg.str());
    return;
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : own) tensor.copy_(theirs.at(name));
  report.copied += static_cast<int64_t>(own.size());
  report.head_loaded = true;
}

}  // namespace

std::string to_string(WeightsFormat format) {
  return format == WeightsFormat::kScriptModule ? "script module" : "state dict";
}

ForeignWeights read_weights(const std::string& path) {
  TORCH_CHECK(std::filesystem::exists(path), "weights file not found: ", path);
  TORCH_CHECK(std::filesystem::is_regular_file(path), "weights file is not a regular file: ", path);
  const auto magic = leading_bytes(path, 4);
  TORCH_CHECK(!magic.empty(), path, ": empty file, not a torch archive");
  TORCH_CHECK(static_cast<unsigned char>(magic[0]) != 0x80, path,
              ": a legacy (pre-1.6) torch.save file, which libtorch cannot read; re-save it from Python with "
              "torch.save(dict(state_dict), path) or torch.jit.save");
  TORCH_CHECK(magic == kZipMagic, path,
              ": not a torch archive (torch.jit.save and torch.save write zip files; this one starts with bytes ",
              hex(magic), ")");
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception& e) {
    TORCH_CHECK(false, path, ": truncated or corrupt torch archive (", error_text(e), ")");
  }
  check_archive_pickles(path);
  ForeignWeights weights;
  if (reader->hasRecord("constants.pkl")) {
    reader.reset();
    weights.format = WeightsFormat::kScriptModule;
    weights.tensors = read_archive_tensors(path);
    TORCH_CHECK(!weights.tensors.empty(), path, ": the scripted module holds no parameters or buffers");
  } else {
    TORCH_CHECK(reader->hasRecord("data.pkl"), path,
                ": a zip file but not a torch archive (no data.pkl record; expected torch.jit.save or torch.save "
                "output)");
    const auto [pickle, pickle_size] = reader->getRecord("data.pkl");
    const bool ordered_dict = pickles_ordered_dict(static_cast<const char*>(pickle.get()), pickle_size);
    reader.reset();
    weights.format = WeightsFormat::kStateDict;
    weights.tensors = read_state_dict(path, ordered_dict);
  }
  return weights;
}

std::string infer_architecture(const std::map<std::string, torch::Tensor>& tensors) {
  std::vector<int64_t> layers(4, 0);
  for (const auto& [name, _] : tensors) {
    for (int stage = 1; stage <= 4; ++stage) {
      const std::string prefix = "layer" + std::to_string(stage) + ".";
      if (name.rfind(prefix, 0) != 0) continue;
      const auto rest = name.substr(prefix.size());
      const auto dot = rest.find('.');
      try {
        layers[stage - 1] = std::max<int64_t>(layers[stage - 1], std::stoll(rest.substr(0, dot)) + 1);
      } catch (const std::exception&) {
        return "";
      }
    }
  }
  if (std::count(layers.begin(), layers.end(), 0) > 0) return "";
  const auto stem = tensors.find("conv1.weight");
  const auto middle = tensors.find("layer1.0.conv2.weight");
  if (stem == tensors.end() || middle == tensors.end() || stem->second.dim() != 4 || middle->second.dim() != 4) {
    return "";
  }
  const bool bottleneck = tensors.count("layer1.0.conv3.weight") > 0;
  int64_t groups = 1, width_per_group = 64;
  if (bottleneck) {
    // torchvision: inner width = planes * width_per_group / 64 * groups, planes = the stem's width.
    const int64_t inner = middle->second.size(0);
    groups = std::max<int64_t>(1, inner / std::max<int64_t>(1, middle->second.size(1)));
    width_per_group = inner * 64 / std::max<int64_t>(1, stem->second.size(0) * groups);
  }
  for (const auto& arch : nn::resnet_architectures()) {
    const auto options = nn::resnet_options(arch);
    if (options.layers() != layers || options.bottleneck() != bottleneck) continue;
    if (bottleneck && (options.groups() != groups || options.width_per_group() != width_per_group)) continue;
    return arch;
  }
  return "";
}

int64_t classifier_classes(const std::map<std::string, torch::Tensor>& tensors) {
  for (const char* name : {"fc.weight", "fc.0.weight"}) {
    auto it = tensors.find(name);
    if (it != tensors.end() && it->second.dim() == 2) return it->second.size(0);
  }
  return 0;
}

TransferReport transfer_weights(nn::ClassifierImpl& model, const std::map<std::string, torch::Tensor>& weights_in,
                                const std::string& source, const TransferOptions& options) {
  TransferReport report;
  const auto weights =
      without_gate(without_data_parallel_prefix(weights_in, source, report.notices), source, report.notices);
  report.source_classes = classifier_classes(weights);
  report.backbone = copy_backbone(model, weights, report.copied);
  if (!report.backbone.ok()) {
    const auto looks_like = infer_architecture(weights);
    const auto& arch = model.options.arch();
    TORCH_CHECK(!options.strict(), source, ": the weights do not fit ", arch,
                looks_like.empty() || looks_like == arch ? std::string()
                                                         : " (they look like " + looks_like + ")",
                ":\n", describe_capped(report.backbone));
    report.notices.push_back(source + ": backbone loaded partially: " +
                             std::to_string(report.backbone.missing.size()) + " missing, " +
                             std::to_string(report.backbone.unexpected.size()) + " unexpected, " +
                             std::to_string(report.backbone.wrong_shape.size()) + " wrongly shaped tensors");
    for (const auto& name : report.backbone.unexpected) report.unused.push_back(name);
  }
  copy_head(model, weights, source, report);
  return report;
}

data::Preprocess imagenet_preprocess(int64_t crop) {
  TORCH_CHECK(crop >= 1, "imagenet_preprocess: crop must be positive, got ", crop);
  data::Preprocess preprocess;
  preprocess.channels = 3;
  preprocess.crop = crop;
  preprocess.resize = static_cast<int64_t>(static_cast<double>(crop) / 0.875);
  preprocess.mean = {0.485, 0.456, 0.406};
  preprocess.std = {0.229, 0.224, 0.225};
  return preprocess;
}

ImportResult import_weights(const std::string& path, const ImportOptions& options) {
  ImportResult result;
  auto weights = read_weights(path);
  result.format = weights.format;
  auto model_options = options.model();
  if (model_options.arch() == "auto") {
    const auto arch = infer_architecture(weights.tensors);
    TORCH_CHECK(!arch.empty(), path, ": cannot infer the architecture from the tensor names and shapes; pass --arch");
    model_options.arch(arch);
  }
  if (model_options.num_classes() == 0) {
    int64_t classes = classifier_classes(weights.tensors);
    if (classes == 0) classes = static_cast<int64_t>(options.classes().size());
    TORCH_CHECK(classes > 0, path, " holds no classifier to take the class count from; pass --classes");
    model_options.num_classes(classes);
  }
  TORCH_CHECK(options.classes().empty() || static_cast<int64_t>(options.classes().size()) == model_options.num_classes(),
              options.classes().size(), " class names given for ", model_options.num_classes(), " classes");
  TORCH_CHECK(options.preprocess().channels == model_options.in_channels(), "preprocessing gives ",
              options.preprocess().channels, "-channel images but the model takes ", model_options.in_channels());
  TORCH_CHECK(options.preprocess().mean.size() == static_cast<size_t>(options.preprocess().channels) &&
                  options.preprocess().std.size() == static_cast<size_t>(options.preprocess().channels),
              "preprocessing needs one mean and one std per channel (", options.preprocess().channels, ")");

  torch::manual_seed(options.seed());
  result.model = nn::make_classifier(model_options);
  result.report = transfer_weights(*result.model, weights.tensors, path, TransferOptions().strict(options.strict()));
  result.model->eval();

  auto& metadata = result.metadata;
  metadata.model = model_options;
  metadata.classes = options.classes();
  metadata.preprocess = options.preprocess();
  metadata.extra["import"] = {{"source", std::filesystem::absolute(path).string()},
                              {"format", to_string(weights.format)},
                              {"head_loaded", result.report.head_loaded},
                              {"source_classes", result.report.source_classes},
                              {"unused", result.report.unused},
                              {"notices", result.report.notices}};
  return result;
}

}  // namespace splitshare::train
