// The data layer's batch streams for the Python package (python/splitshare/data.py): every data
// set the command-line tool reads, opened by the same library functions with the same options,
// as a TorchScript custom class (`torch.classes.splitshare.Stream`) whose next() returns the
// batch's tensors. Options arrive as one JSON object so that unset ones keep the library's
// defaults (data::DataOptions), the one place they are written.

#include <splitshare/data/datasets.h>
#include <splitshare/data/image_folder_stream.h>
#include <splitshare/data/preprocess_json.h>

#include <nlohmann/json.hpp>
#include <torch/custom_class.h>
#include <torch/library.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

namespace {

namespace data = splitshare::data;
using Json = nlohmann::json;

/// One BatchStream, driven from Python.
class Stream : public torch::CustomClassHolder {
 public:
  explicit Stream(std::unique_ptr<data::BatchStream> stream) : stream_(std::move(stream)) {}

  data::BatchStream& get() { return *stream_; }

  /// [images, labels, indices] (+ [scale, shift] for uint8 images), or [] at the epoch's end.
  std::vector<at::Tensor> next() {
    auto batch = stream_->next();
    if (!batch) return {};
    std::vector<at::Tensor> out{batch->images, batch->labels, batch->indices};
    if (batch->scale.defined()) {
      out.push_back(batch->scale);
      out.push_back(batch->shift);
    }
    return out;
  }

 private:
  std::unique_ptr<data::BatchStream> stream_;
};

std::string where(const std::string& key) { return "splitshare.data: option " + key + "="; }

int64_t integer(const std::string& key, const Json& value, int64_t min) {
  TORCH_CHECK_VALUE(value.is_number_integer(), where(key), value.dump(), " is not an integer");
  const auto v = value.get<int64_t>();
  TORCH_CHECK_VALUE(v >= min, where(key), v, " is out of range (expected an integer >= ", min, ")");
  return v;
}

double real(const std::string& key, const Json& value, double min, double max) {
  TORCH_CHECK_VALUE(value.is_number(), where(key), value.dump(), " is not a number");
  const auto v = value.get<double>();
  TORCH_CHECK_VALUE(v >= min && v <= max, where(key), v, " is out of range (expected ", min, " to ", max, ")");
  return v;
}

bool flag(const std::string& key, const Json& value) {
  TORCH_CHECK_VALUE(value.is_boolean(), where(key), value.dump(), " is not True or False");
  return value.get<bool>();
}

std::string text(const std::string& key, const Json& value) {
  TORCH_CHECK_VALUE(value.is_string(), where(key), value.dump(), " is not a string");
  return value.get<std::string>();
}

std::vector<double> reals(const std::string& key, const Json& value, size_t count) {
  TORCH_CHECK_VALUE(value.is_array() && (count == 0 || value.size() == count), where(key), value.dump(),
                    count ? " must be a list of " + std::to_string(count) + " numbers" : " must be a list of numbers");
  std::vector<double> out;
  for (const auto& item : value) out.push_back(real(key, item, -1e30, 1e30));
  return out;
}

using Setter = std::function<void(data::DataOptions&, const std::string&, const Json&)>;

// The options a Python caller may set, by the name data.py uses (DataOptions' fields). As in the
// tool, naming a crop size or a photo recipe keeps a folder of small images in the photo pipeline.
std::map<std::string, Setter> setters() {
  return {
      {"batch_size", [](auto& o, auto& k, auto& v) { o.batch_size(integer(k, v, 1)); }},
      {"eval_batch_size", [](auto& o, auto& k, auto& v) { o.eval_batch_size(integer(k, v, 1)); }},
      {"seed", [](auto& o, auto& k, auto& v) { o.seed(static_cast<uint64_t>(integer(k, v, 0))); }},
      {"workers", [](auto& o, auto& k, auto& v) { o.workers(integer(k, v, 0)); }},
      {"rank", [](auto& o, auto& k, auto& v) { o.rank(integer(k, v, 0)); }},
      {"world_size", [](auto& o, auto& k, auto& v) { o.world_size(integer(k, v, 1)); }},
      {"strict", [](auto& o, auto& k, auto& v) { o.strict(flag(k, v)); }},
      {"augment", [](auto& o, auto& k, auto& v) { o.augment(flag(k, v)); }},
      {"recipe",
       [](auto& o, auto& k, auto& v) { o.photo_recipe(data::parse_photo_recipe(text(k, v))).small_image_side(0); }},
      {"auto_augment", [](auto& o, auto& k, auto& v) { o.auto_augment(data::parse_auto_augment(text(k, v))); }},
      {"random_erase", [](auto& o, auto& k, auto& v) { o.random_erase(real(k, v, 0, 1)); }},
      {"crop_scale", [](auto& o, auto& k, auto& v) { o.crop_scale(reals(k, v, 2)); }},
      {"crop_ratio", [](auto& o, auto& k, auto& v) { o.crop_ratio(reals(k, v, 2)); }},
      {"val_split", [](auto& o, auto& k, auto& v) { o.val_split(real(k, v, 0, 1)); }},
      {"class_map", [](auto& o, auto& k, auto& v) { o.class_map(text(k, v)); }},
      {"balanced_sampler", [](auto& o, auto& k, auto& v) { o.balanced_sampler(flag(k, v)); }},
      {"shuffle_buffer", [](auto& o, auto& k, auto& v) { o.shuffle_buffer(integer(k, v, 0)); }},
      {"channels_last", [](auto& o, auto& k, auto& v) { o.channels_last(flag(k, v)); }},
      {"uint8", [](auto& o, auto& k, auto& v) { o.uint8_train_images(flag(k, v)); }},
      {"pin_memory", [](auto& o, auto& k, auto& v) { o.pin_memory(flag(k, v)); }},
      {"image_size", [](auto& o, auto& k, auto& v) { o.image_size(integer(k, v, 1)).small_image_side(0); }},
      {"limit_train", [](auto& o, auto& k, auto& v) { o.limit_train(integer(k, v, 0)); }},
      {"limit_val", [](auto& o, auto& k, auto& v) { o.limit_val(integer(k, v, 0)); }},
      {"mean", [](auto& o, auto& k, auto& v) { o.mean(reals(k, v, 0)); }},
      {"std", [](auto& o, auto& k, auto& v) { o.std(reals(k, v, 0)); }},
  };
}

data::DataOptions data_options(const std::string& options_json) {
  const Json given = Json::parse(options_json);
  TORCH_CHECK_VALUE(given.is_object(), "splitshare.data: options must be a JSON object, got ", given.dump());
  data::DataOptions options;
  const auto table = setters();
  for (const auto& [key, value] : given.items()) {
    const auto it = table.find(key);
    if (it == table.end()) {
      std::string names;
      for (const auto& entry : table) names += (names.empty() ? "" : ", ") + entry.first;
      TORCH_CHECK_VALUE(false, "splitshare.data: unknown option '", key, "' (expected one of ", names, ")");
    }
    it->second(options, key, value);
  }
  TORCH_CHECK_VALUE(options.rank() < options.world_size(), "splitshare.data: rank=", options.rank(),
                    " must be below world_size=", options.world_size());
  return options;
}

// What a Python loader reports besides its batches.
std::string bundle_info(const data::DataBundle& bundle) {
  return Json{{"classes", bundle.classes},
              {"class_counts", bundle.class_counts},
              {"preprocess", data::to_json(bundle.preprocess)},
              {"small_images", bundle.small_images},
              {"val_files", bundle.val_files}}
      .dump();
}

c10::intrusive_ptr<Stream> wrap(std::unique_ptr<data::BatchStream> stream) {
  TORCH_CHECK(stream, "splitshare.data: the data set opened without this stream");
  return c10::make_intrusive<Stream>(std::move(stream));
}

std::tuple<c10::intrusive_ptr<Stream>, c10::intrusive_ptr<Stream>, std::string> open_data(
    const std::string& spec, const std::string& options_json) {
  auto bundle = data::open_data(data::parse_data_spec(spec), data_options(options_json));
  auto info = bundle_info(bundle);
  return {wrap(std::move(bundle.train)), wrap(std::move(bundle.val)), std::move(info)};
}

std::tuple<c10::intrusive_ptr<Stream>, std::string> open_image_folder(const std::string& root, bool train,
                                                                      const std::string& options_json) {
  auto bundle = data::open_image_folder_stream(root, data_options(options_json), train);
  auto info = bundle_info(bundle);
  return {wrap(std::move(train ? bundle.train : bundle.val)), std::move(info)};
}

using Self = c10::intrusive_ptr<Stream>;

}  // namespace

TORCH_LIBRARY_FRAGMENT(splitshare, m) {
  m.class_<Stream>("Stream")
      .def("size", [](const Self& s) { return s->get().size(); })
      .def("batches_per_epoch", [](const Self& s) { return s->get().batches_per_epoch(); })
      .def("batch_size", [](const Self& s) { return s->get().batch_size(); })
      .def("reset", [](const Self& s, int64_t epoch) { s->get().reset(epoch); })
      .def("reset_at", [](const Self& s, int64_t epoch, int64_t consumed) { s->get().reset_at(epoch, consumed); })
      .def("next", [](const Self& s) { return s->next(); })
      .def("skipped", [](const Self& s) { return s->get().skipped(); });
  m.def("open_data(str spec, str options) -> (__torch__.torch.classes.splitshare.Stream train, "
        "__torch__.torch.classes.splitshare.Stream val, str info)",
        &open_data);
  m.def("open_image_folder(str root, bool train, str options) -> "
        "(__torch__.torch.classes.splitshare.Stream stream, str info)",
        &open_image_folder);
}
