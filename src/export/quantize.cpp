#include <splitshare/export/quantize.h>

#include "export_detail.h"

#include <splitshare/nn/quantized.h>

#include <algorithm>
#include <limits>

namespace splitshare::train {
namespace {

// The int8 model against the float one on images the calibration did not see.
void compare(const nn::InferenceModel& folded, const nn::QuantizedModel& quantized, const torch::Tensor& images,
             QuantizeSummary& summary) {
  const auto reference = folded.forward(images).logits;
  const auto int8 = quantized.forward(images).logits;
  const double agree = int8.argmax(1).eq(reference.argmax(1)).sum().item<double>();
  const double scale = std::max(reference.abs().max().item<double>(), std::numeric_limits<double>::min());
  const double difference = (int8 - reference).abs().max().item<double>() / scale;
  const auto n = images.size(0);
  summary.agreement = (summary.agreement * static_cast<double>(summary.checked) + agree) /
                      static_cast<double>(summary.checked + n);
  summary.max_relative_difference = std::max(summary.max_relative_difference, difference);
  summary.checked += n;
}

}  // namespace

QuantizationRecord calibrate(nn::ClassifierImpl& model, data::BatchStream& stream, const QuantizeOptions& options,
                             const std::function<void(int64_t, int64_t)>& on_progress) {
  TORCH_CHECK(options.images() >= 1, "quantize: the calibration image count must be positive, got ", options.images());
  nn::QuantizedModel quantized(model);
  QuantizationRecord record;
  record.data = options.data();
  stream.reset(0);
  while (record.images < options.images()) {
    auto batch = stream.next();
    if (!batch) break;
    const auto take = std::min(batch->images.size(0), options.images() - record.images);
    quantized.observe(batch->images.narrow(0, 0, take));
    record.images += take;
    if (on_progress) on_progress(record.images, options.images());
  }
  TORCH_CHECK(record.images > 0, "quantize: the calibration data has no images");
  record.ranges = quantized.observed();
  return record;
}

QuantizeSummary quantize_checkpoint(const std::string& checkpoint, data::BatchStream& stream, const std::string& out,
                                    const QuantizeOptions& options,
                                    const std::function<void(int64_t, int64_t)>& on_progress) {
  TORCH_CHECK(options.check_images() >= 0, "quantize: the check image count must be >= 0, got ",
              options.check_images());
  auto loaded = detail::load_for_export(checkpoint, out, "quantize");
  TORCH_CHECK(nn::quantized_conv_available(), "quantize: this libtorch has no oneDNN int8 convolutions "
              "(onednn::qconv2d_pointwise); the int8 form needs them");
  QuantizeSummary summary;
  summary.record = calibrate(*loaded.model, stream, options, on_progress);
  nn::QuantizedModel quantized(*loaded.model);
  quantized.quantize(summary.record.ranges);
  const nn::InferenceModel folded(*loaded.model);
  // The stream goes on where calibration stopped: the check images are the ones after.
  int64_t skip = summary.record.images;
  stream.reset(0);
  while (summary.checked < options.check_images()) {
    auto batch = stream.next();
    if (!batch) break;
    auto images = batch->images;
    const auto skipped = std::min(skip, images.size(0));
    skip -= skipped;
    images = images.narrow(0, skipped, images.size(0) - skipped);
    images = images.narrow(0, 0, std::min(images.size(0), options.check_images() - summary.checked));
    if (images.size(0) > 0) compare(folded, quantized, images, summary);
  }
  save_checkpoint(*loaded.model, loaded.metadata, out, {{kQuantizationFile, to_json(summary.record).dump(1)}});
  return summary;
}

}  // namespace splitshare::train
