#include "fuzz_target.h"

#include "data/tar.h"

#include <cstring>
#include <string>

// The input is a tar archive (a WebDataset shard), listed from memory as a shard file is.
// Every member listed must lie inside the input, start on a 512-byte block after the
// previous member, and a listing that stops says why, naming the archive.
namespace splitshare::fuzz {

void tar(const uint8_t* data, size_t size) {
  const data::ReadAt read_at = [&](int64_t offset, size_t n, char* out) {
    if (offset < 0 || static_cast<size_t>(offset) > size || n > size - static_cast<size_t>(offset)) return false;
    std::memcpy(out, data + offset, n);
    return true;
  };
  const auto listing = data::list_tar(read_at, static_cast<int64_t>(size), "fuzz.tar");
  int64_t previous_end = 0;
  for (const auto& member : listing.members) {
    require(member.offset >= previous_end + 512 && member.offset % 512 == 0, "member out of order:", member.name);
    require(member.size >= 0 && member.offset + member.size <= static_cast<int64_t>(size), "member outside the input:",
            member.name);
    previous_end = member.offset + member.size;
  }
  require(listing.problem.empty() || listing.problem.rfind("fuzz.tar: ", 0) == 0, "problem does not name the archive:",
          listing.problem);
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(tar)
