#include "fuzz_target.h"

#include <splitshare/data/idx.h>

#include <string>

// First byte: bit 0 chooses the label reader over the image reader; the rest is the file.
namespace splitshare::fuzz {

void idx(const uint8_t* data, size_t size) {
  if (size == 0) return;
  const bool labels = data[0] & 1;
  const std::string bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  // Headers may declare up to ~500 GB; a real file that big is fine, a fuzzed one is not.
  constexpr uint64_t kMaxBytes = uint64_t{64} << 20;
  torch::Tensor tensor;
  try {
    tensor = labels ? data::parse_idx_labels(bytes, "fuzz.idx", kMaxBytes)
                    : data::parse_idx_images(bytes, "fuzz.idx", kMaxBytes);
  } catch (const c10::Error& e) {
    require_named(e, "fuzz.idx");
    return;
  }
  require(tensor.dim() == (labels ? 1 : 4) && tensor.size(0) >= 1, "accepted idx has the wrong shape");
  if (labels) require(tensor.min().item<int64_t>() >= 0 && tensor.max().item<int64_t>() <= 255, "label range");
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(idx)
