#include <splitshare/checkpoint/checkpoint.h>
#include <splitshare/checkpoint/quantization.h>
#include <splitshare/nn/quantized.h>

#include <cmath>

namespace splitshare::train {
namespace {

constexpr const char* kFormat = "splitshare-int8";
constexpr int kVersion = 1;

const nlohmann::json& member(const nlohmann::json& json, const char* key, const std::string& source) {
  TORCH_CHECK(json.is_object() && json.contains(key), source, ": ", kQuantizationFile, " has no '", key, "' field");
  return json.at(key);
}

std::pair<double, double> range_from_json(const nlohmann::json& r, size_t index, const std::string& source) {
  TORCH_CHECK(r.is_array() && r.size() == 2 && r[0].is_number() && r[1].is_number(), source, ": ",
              kQuantizationFile, " range ", index, " must be [lo, hi], got ", r.dump());
  const double lo = r[0].get<double>(), hi = r[1].get<double>();
  TORCH_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, source, ": ", kQuantizationFile, " range ", index,
              " must be finite with lo <= hi, got [", lo, ", ", hi, "]");
  return {lo, hi};
}

}  // namespace

nlohmann::json to_json(const QuantizationRecord& record) {
  nlohmann::json ranges = nlohmann::json::array();
  for (const auto& [lo, hi] : record.ranges) ranges.push_back({lo, hi});
  return {{"format", kFormat},
          {"version", kVersion},
          {"activations", "uint8, per tensor, affine"},
          {"weights", "int8, per output channel, symmetric"},
          {"calibration", {{"method", record.method}, {"images", record.images}, {"data", record.data}}},
          {"ranges", ranges}};
}

QuantizationRecord quantization_from_json(const nlohmann::json& json, const std::string& source) {
  const auto& format = member(json, "format", source);
  TORCH_CHECK(format == kFormat, source, ": ", kQuantizationFile, " format must be '", kFormat, "', got ",
              format.dump());
  const auto& version = member(json, "version", source);
  TORCH_CHECK(version.is_number_integer() && version.get<int64_t>() == kVersion, source, ": ", kQuantizationFile,
              " version ", version.dump(), " is not one this build reads (", kVersion, ")");
  QuantizationRecord record;
  const auto& calibration = member(json, "calibration", source);
  const auto& method = member(calibration, "method", source);
  const auto& images = member(calibration, "images", source);
  const auto& data = member(calibration, "data", source);
  TORCH_CHECK(method.is_string() && images.is_number_integer() && data.is_string(), source, ": ", kQuantizationFile,
              " calibration must hold a string method, an integer image count and a string data, got ",
              calibration.dump());
  record.method = method.get<std::string>();
  record.images = images.get<int64_t>();
  record.data = data.get<std::string>();
  const auto& ranges = member(json, "ranges", source);
  TORCH_CHECK(ranges.is_array() && !ranges.empty(), source, ": ", kQuantizationFile,
              " ranges must be a non-empty array of [lo, hi]");
  for (size_t i = 0; i < ranges.size(); ++i) record.ranges.push_back(range_from_json(ranges[i], i, source));
  return record;
}

std::optional<QuantizationRecord> read_quantization(const std::string& path) {
  const auto text = read_checkpoint_file(path, kQuantizationFile);
  if (!text) return std::nullopt;
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(*text);
  } catch (const nlohmann::json::exception& e) {
    TORCH_CHECK(false, path, ": ", kQuantizationFile, " is not valid JSON: ", e.what());
  }
  return quantization_from_json(json, path);
}

std::unique_ptr<nn::Predictor> make_predictor(const LoadedCheckpoint& checkpoint, const nn::InferenceOptions& options) {
  auto& model = *checkpoint.model.ptr();
  if (!checkpoint.quantization) return std::make_unique<nn::InferenceModel>(model, options);
  auto quantized = std::make_unique<nn::QuantizedModel>(model);
  TORCH_CHECK(checkpoint.quantization->ranges.size() == quantized->points(), checkpoint.path, ": ",
              kQuantizationFile, " holds ", checkpoint.quantization->ranges.size(),
              " activation ranges but the model has ", quantized->points(),
              " quantization points (a record from another model?); quantize the checkpoint again");
  quantized->quantize(checkpoint.quantization->ranges);
  return quantized;
}

}  // namespace splitshare::train
