#include "tar.h"

#include <c10/util/Exception.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <optional>

namespace splitshare::data {
namespace {

constexpr int64_t kBlock = 512;
// A pax record or GNU long name longer than this is not a name we would use.
constexpr int64_t kMaxRecord = 1 << 20;

using Header = std::array<char, kBlock>;

// A NUL- or length-terminated header field.
std::string field(const Header& h, size_t at, size_t length) {
  const char* begin = h.data() + at;
  return std::string(begin, std::find(begin, begin + length, '\0'));
}

// An octal number (spaces and NULs around it), or GNU's base-256 form (high bit of the first byte).
std::optional<int64_t> number(const Header& h, size_t at, size_t length) {
  const auto* p = reinterpret_cast<const unsigned char*>(h.data() + at);
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return std::nullopt;  // negative, or too large for int64
    int64_t value = 0;
    for (size_t i = 1; i < length; ++i) {
      if (value > (INT64_MAX >> 8)) return std::nullopt;
      value = (value << 8) | p[i];
    }
    return value;
  }
  size_t i = 0;
  while (i < length && p[i] == ' ') ++i;
  int64_t value = 0;
  bool digits = false;
  for (; i < length && p[i] >= '0' && p[i] <= '7'; ++i, digits = true) {
    if (value > (INT64_MAX >> 3)) return std::nullopt;
    value = value * 8 + (p[i] - '0');
  }
  for (; i < length; ++i) {
    if (p[i] != ' ' && p[i] != '\0') return std::nullopt;
  }
  return digits ? std::optional<int64_t>(value) : std::nullopt;
}

// The checksum is the sum of the header's bytes with its own field read as spaces; old tars
// summed signed chars, so either sum is accepted.
bool checksum_ok(const Header& h) {
  const auto stored = number(h, 148, 8);
  if (!stored) return false;
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= 148 && i < 156;
    unsigned_sum += in_field ? ' ' : static_cast<unsigned char>(h[i]);
    signed_sum += in_field ? ' ' : static_cast<signed char>(h[i]);
  }
  return *stored == unsigned_sum || *stored == signed_sum;
}

bool all_zero(const Header& h) {
  return std::all_of(h.begin(), h.end(), [](char c) { return c == '\0'; });
}

// Pax records: "LENGTH key=value\n", LENGTH counting the whole record. Sets path / size.
bool parse_pax(const std::string& data, std::optional<std::string>& path, std::optional<int64_t>& size) {
  size_t at = 0;
  while (at < data.size()) {
    if (data[at] == '\0') break;  // padding some writers leave
    size_t space = data.find(' ', at);
    if (space == std::string::npos || space == at || space - at > 12) return false;
    int64_t length = 0;
    for (size_t i = at; i < space; ++i) {
      if (data[i] < '0' || data[i] > '9') return false;
      length = length * 10 + (data[i] - '0');
    }
    if (length <= static_cast<int64_t>(space - at) + 1 || at + static_cast<size_t>(length) > data.size() ||
        data[at + static_cast<size_t>(length) - 1] != '\n') {
      return false;
    }
    const std::string record = data.substr(space + 1, at + static_cast<size_t>(length) - space - 2);
    const size_t equals = record.find('=');
    if (equals == std::string::npos) return false;
    const std::string key = record.substr(0, equals), value = record.substr(equals + 1);
    if (key == "path") path = value;
    if (key == "size") {
      if (value.empty() || value.size() > 18 || value.find_first_not_of("0123456789") != std::string::npos) return false;
      size = std::stoll(value);
    }
    at += static_cast<size_t>(length);
  }
  return true;
}

// Reads the state of one archive: the position and what the previous pax / long-name
// records say about the next member.
class Lister {
 public:
  Lister(const ReadAt& read_at, int64_t file_size, const std::string& name)
      : read_at_(read_at), file_size_(file_size), name_(name) {}

  TarListing run() {
    if (file_size_ < kBlock) fail("the file is empty or shorter than one tar header");
    while (listing_.problem.empty() && at_ < file_size_) {
      Header h;
      if (file_size_ - at_ < kBlock || !read_at_(at_, kBlock, h.data())) {
        fail("the file ends inside a header");
      } else if (all_zero(h)) {
        break;  // the end-of-archive blocks
      } else if (!checksum_ok(h)) {
        fail("a header's checksum is wrong (not a tar file, or corrupt)");
      } else {
        entry(h);
      }
    }
    // An archive that ends right after its last member, without the end blocks, is accepted.
    return std::move(listing_);
  }

 private:
  // One header at at_: a member, a record for the next one, or an entry to skip.
  void entry(const Header& h) {
    const char type = h[156];
    const bool is_record = type == 'x' || type == 'L' || type == 'g';
    // A pax size applies to the member after the record, not to another record.
    const auto size = !is_record && pending_size_ ? pending_size_ : number(h, 124, 12);
    if (!size || *size < 0) return fail("a header's size field is not a number");
    const int64_t data_at = at_ + kBlock;
    if (*size > file_size_ - data_at) {
      return fail("member " + member_name(h) + " is cut short: " + std::to_string(*size) + " bytes from offset " +
                  std::to_string(data_at) + ", but the file has " + std::to_string(file_size_));
    }
    if (is_record) {
      if (!record(type, data_at, *size)) return;
    } else {
      if (type == '0' || type == '\0' || type == '7') {
        listing_.members.push_back({member_name(h), data_at, *size});
      }
      pending_path_.reset();
      pending_size_.reset();
    }
    at_ = data_at + (*size + kBlock - 1) / kBlock * kBlock;
  }

  // A pax header ('x': for the next member, 'g': global, ignored) or a GNU long name ('L').
  bool record(char type, int64_t data_at, int64_t size) {
    if (type == 'g') return true;
    if (size > kMaxRecord) return fail("a pax or long-name record of " + std::to_string(size) + " bytes"), false;
    std::string data(static_cast<size_t>(size), '\0');
    if (!read_at_(data_at, data.size(), data.data())) return fail("the file ends inside a pax record"), false;
    if (type == 'L') {
      pending_path_ = data.substr(0, data.find('\0'));
      return true;
    }
    if (!parse_pax(data, pending_path_, pending_size_)) return fail("a pax record is malformed"), false;
    return true;
  }

  std::string member_name(const Header& h) const {
    if (pending_path_) return *pending_path_;
    const std::string name = field(h, 0, 100);
    // ustar's prefix field (GNU tar uses those bytes for other things).
    const bool ustar = std::memcmp(h.data() + 257, "ustar\0", 6) == 0;
    const std::string prefix = ustar ? field(h, 345, 155) : "";
    return prefix.empty() ? name : prefix + "/" + name;
  }

  void fail(const std::string& why) {
    listing_.problem = name_ + ": " + why + " at offset " + std::to_string(at_) +
                       (listing_.members.empty() ? " (no member before it)"
                                                 : " (after member " + listing_.members.back().name + ")");
  }

  const ReadAt& read_at_;
  int64_t file_size_;
  std::string name_;
  int64_t at_ = 0;
  std::optional<std::string> pending_path_;
  std::optional<int64_t> pending_size_;
  TarListing listing_;
};

}  // namespace

TarListing list_tar(const ReadAt& read_at, int64_t file_size, const std::string& name) {
  return Lister(read_at, file_size, name).run();
}

TarListing list_tar_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  TORCH_CHECK(fd >= 0, "cannot open shard ", path, ": ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const std::string reason = std::strerror(errno);
    ::close(fd);
    TORCH_CHECK(false, "cannot read shard ", path, ": ", reason);
  }
  const ReadAt read_at = [fd](int64_t offset, size_t size, char* out) {
    size_t done = 0;
    while (done < size) {
      const auto n = ::pread(fd, out + done, size - done, static_cast<off_t>(offset) + static_cast<off_t>(done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      done += static_cast<size_t>(n);
    }
    return true;
  };
  auto listing = list_tar(read_at, static_cast<int64_t>(st.st_size), path);
  ::close(fd);
  return listing;
}

}  // namespace splitshare::data
