#include <splitshare/data/idx.h>

#include <zlib.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <string>

namespace splitshare::data {
namespace {

constexpr uint32_t kImagesMagic = 0x00000803;  // unsigned byte, 3 dimensions
constexpr uint32_t kLabelsMagic = 0x00000801;  // unsigned byte, 1 dimension
constexpr size_t kImagesHeader = 16;
constexpr size_t kLabelsHeader = 8;
// Beyond these an idx header is corrupt rather than a real dataset.
constexpr uint32_t kMaxSide = 16384;
constexpr uint32_t kMaxCount = std::numeric_limits<int32_t>::max();
// Larger gzip size trailers are not trusted for preallocation (idx images compress ~2-10x).
constexpr size_t kMaxPlausibleRatio = 64;

std::string hex32(uint32_t value) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08x", value);
  return text;
}

std::string read_raw(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  TORCH_CHECK(in, "Cannot open idx file ", path);
  const std::streamoff size = in.tellg();
  TORCH_CHECK(size >= 0, "Cannot determine the size of idx file ", path);
  in.seekg(0);
  std::string bytes(static_cast<size_t>(size), '\0');
  in.read(bytes.data(), size);
  TORCH_CHECK(in, "Error reading idx file ", path, " (", size, " bytes)");
  return bytes;
}

bool is_gzip(const std::string& bytes) {
  return bytes.size() >= 2 && static_cast<uint8_t>(bytes[0]) == 0x1f &&
         static_cast<uint8_t>(bytes[1]) == 0x8b;
}

struct InflateGuard {
  z_stream* stream;
  ~InflateGuard() { inflateEnd(stream); }
};

// Inflates every gzip member of `compressed` (concatenated members are legal gzip).
// `expected_size` sees the first `header_size` bytes once they are out and returns
// the size the whole file must have (it throws on a bad header), so that a
// decompression bomb or garbage after the data stops early instead of filling memory.
std::string gunzip(const std::string& compressed, const std::string& path, size_t header_size,
                   const std::function<uint64_t(const std::string&, const std::string&)>& expected_size) {
  TORCH_CHECK(compressed.size() <= std::numeric_limits<uInt>::max(),
              "gzip file ", path, " is too large (", compressed.size(), " bytes)");
  z_stream zs{};
  TORCH_CHECK(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK, "Cannot initialise zlib for ", path);
  InflateGuard guard{&zs};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  zs.avail_in = static_cast<uInt>(compressed.size());

  // The gzip trailer holds the uncompressed size modulo 2^32: a good first guess,
  // unless the file is truncated or corrupt and those bytes are not a trailer.
  size_t guess = compressed.size() * 4;
  if (compressed.size() >= 18) {
    const auto* tail = reinterpret_cast<const uint8_t*>(compressed.data() + compressed.size() - 4);
    const size_t trailer = tail[0] | tail[1] << 8 | tail[2] << 16 | uint32_t{tail[3]} << 24;
    if (trailer <= compressed.size() * kMaxPlausibleRatio) guess = std::max(guess, trailer);
  }
  std::string out(guess + 1, '\0');
  size_t produced = 0;
  std::optional<uint64_t> limit;
  while (true) {
    if (!limit && produced >= header_size) limit = expected_size(out.substr(0, header_size), path);
    TORCH_CHECK(!limit || produced <= *limit, "idx file ", path, " has unexpected trailing bytes: expected ",
                *limit, " bytes after gunzip, found more");
    // Grow by doubling, but never past one byte more than the header allows.
    if (produced == out.size()) out.resize(limit ? std::min<uint64_t>(out.size() * 2, *limit + 1) : out.size() * 2);
    const size_t room = std::min<size_t>(out.size() - produced, std::numeric_limits<uInt>::max());
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + produced);
    zs.avail_out = static_cast<uInt>(room);
    const int rc = inflate(&zs, Z_NO_FLUSH);
    produced += room - zs.avail_out;
    if (rc == Z_STREAM_END) {
      if (zs.avail_in >= 2 && zs.next_in[0] == 0x1f && zs.next_in[1] == 0x8b) {
        TORCH_CHECK(inflateReset(&zs) == Z_OK, "zlib error in ", path);
        continue;
      }
      break;
    }
    if (rc == Z_BUF_ERROR && zs.avail_in == 0) {
      TORCH_CHECK(false, "gzip data in ", path, " ends early after ", produced,
                  " uncompressed bytes: the file is truncated");
    }
    TORCH_CHECK(rc == Z_OK || rc == Z_BUF_ERROR, "Corrupt gzip data in ", path, ": ",
                zs.msg != nullptr ? zs.msg : "zlib error", " (code ", rc, ")");
  }
  out.resize(produced);
  return out;
}

uint32_t read_be32(const std::string& bytes, size_t offset) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + offset);
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}

const char* describe_magic(uint32_t magic) {
  if (magic == kImagesMagic) return " (an idx3 image file)";
  if (magic == kLabelsMagic) return " (an idx1 label file)";
  return "";
}

void check_header(const std::string& bytes, const std::string& path, uint32_t expected_magic,
                  size_t header_size) {
  TORCH_CHECK(bytes.size() >= header_size, "idx file ", path, " is truncated: the header needs ",
              header_size, " bytes, found ", bytes.size());
  const uint32_t magic = read_be32(bytes, 0);
  TORCH_CHECK(magic == expected_magic, "idx file ", path, " has the wrong magic number: expected ",
              hex32(expected_magic), describe_magic(expected_magic), ", found ", hex32(magic),
              describe_magic(magic));
}

void check_dimension(uint32_t value, uint32_t limit, const char* what, const std::string& path) {
  TORCH_CHECK(value > 0, "idx file ", path, " has an invalid header: ", what, " is 0");
  TORCH_CHECK(value <= limit, "idx file ", path, " has an invalid header: ", what, " is ", value,
              " (more than ", limit, "; the header is corrupt)");
}

void check_size(const std::string& bytes, const std::string& path, uint64_t expected, bool compressed) {
  const char* after = compressed ? " after gunzip" : "";
  TORCH_CHECK(bytes.size() >= expected, "idx file ", path, " is truncated: expected ", expected,
              " bytes", after, ", found ", bytes.size());
  TORCH_CHECK(bytes.size() == expected, "idx file ", path, " has ", bytes.size() - expected,
              " unexpected trailing bytes: expected ", expected, " bytes", after, ", found ", bytes.size());
}

uint64_t images_size(const std::string& bytes, const std::string& path) {
  check_header(bytes, path, kImagesMagic, kImagesHeader);
  const uint32_t count = read_be32(bytes, 4);
  const uint32_t rows = read_be32(bytes, 8);
  const uint32_t cols = read_be32(bytes, 12);
  check_dimension(count, kMaxCount, "the image count", path);
  check_dimension(rows, kMaxSide, "the row count", path);
  check_dimension(cols, kMaxSide, "the column count", path);
  return kImagesHeader + uint64_t{count} * rows * cols;
}

uint64_t labels_size(const std::string& bytes, const std::string& path) {
  check_header(bytes, path, kLabelsMagic, kLabelsHeader);
  const uint32_t count = read_be32(bytes, 4);
  check_dimension(count, kMaxCount, "the label count", path);
  return kLabelsHeader + uint64_t{count};
}

uint64_t within_limit(uint64_t expected, uint64_t max_bytes, const std::string& path) {
  TORCH_CHECK(expected <= max_bytes, "idx file ", path, " declares ", expected, " bytes of data, more than the limit of ",
              max_bytes);
  return expected;
}

// The payload of an idx file: gunzipped when compressed (bounded by the size its header
// declares, at most max_bytes), with that size checked against the data.
class IdxPayload {
 public:
  IdxPayload(const std::string& file_bytes, const std::string& name, uint64_t max_bytes, size_t header_size,
             uint64_t (*declared_size)(const std::string&, const std::string&))
      : file_bytes_(file_bytes), compressed_(is_gzip(file_bytes)) {
    auto bounded = [&](const std::string& header, const std::string& path) {
      return within_limit(declared_size(header, path), max_bytes, path);
    };
    if (compressed_) unzipped_ = gunzip(file_bytes, name, header_size, bounded);
    expected_ = bounded(data(), name);
    check_size(data(), name, expected_, compressed_);
  }
  const std::string& data() const { return compressed_ ? unzipped_ : file_bytes_; }
  /// Header plus data, in bytes.
  uint64_t size() const { return expected_; }

 private:
  const std::string& file_bytes_;
  bool compressed_;
  std::string unzipped_;
  uint64_t expected_ = 0;
};

}  // namespace

torch::Tensor parse_idx_images(const std::string& file_bytes, const std::string& name, uint64_t max_bytes) {
  const IdxPayload payload(file_bytes, name, max_bytes, kImagesHeader, images_size);
  const std::string& data = payload.data();
  const uint64_t expected = payload.size();

  const int64_t count = read_be32(data, 4), rows = read_be32(data, 8), cols = read_be32(data, 12);
  auto images = torch::empty({count, 1, rows, cols}, torch::kUInt8);
  std::memcpy(images.data_ptr<uint8_t>(), data.data() + kImagesHeader, expected - kImagesHeader);
  return images;
}

torch::Tensor parse_idx_labels(const std::string& file_bytes, const std::string& name, uint64_t max_bytes) {
  const IdxPayload payload(file_bytes, name, max_bytes, kLabelsHeader, labels_size);
  const std::string& data = payload.data();

  const int64_t count = read_be32(data, 4);
  auto labels = torch::empty({count}, torch::kInt64);
  auto* out = labels.data_ptr<int64_t>();
  const auto* in = reinterpret_cast<const uint8_t*>(data.data() + kLabelsHeader);
  for (int64_t i = 0; i < count; ++i) out[i] = in[i];
  return labels;
}

torch::Tensor read_idx_images(const std::string& path) { return parse_idx_images(read_raw(path), path); }

torch::Tensor read_idx_labels(const std::string& path) { return parse_idx_labels(read_raw(path), path); }

}  // namespace splitshare::data
