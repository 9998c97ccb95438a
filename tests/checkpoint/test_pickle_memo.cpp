// The memo-index guard run on a torch archive's pickles before libtorch unpickles them.
#include "checkpoint/pickle_memo.h"

#include <gtest/gtest.h>

#include <string>

#include "support.h"

namespace {

std::string check(const std::string& pickle) {
  return splitshare::train::oversized_memo_index(reinterpret_cast<const uint8_t*>(pickle.data()), pickle.size());
}

}  // namespace

TEST(PickleMemo, RealPicklesPassAndIndicesOrLengthsBeyondThePickleAreRefused) {
  // protocol 2: an empty list memoised as 0 with BINPUT; a dict with a string key, LONG_BINPUT 1.
  EXPECT_EQ(check(std::string("\x80\x02]q\x00.", 6)), "");
  EXPECT_EQ(check(std::string("\x80\x02}q\x00X\x01\x00\x00\x00" "ar\x01\x00\x00\x00K\x05s.", 20)), "");
  // Protocol 0's PUT takes a decimal line.
  EXPECT_EQ(check("(lp0\n."), "");
  const auto refused = check(std::string("\x80\x02]r\x00\x00\x00\x10.", 9));  // LONG_BINPUT 268,435,456
  EXPECT_NE(refused.find("memo index 268435456 is larger than the pickle's 9 bytes"), std::string::npos) << refused;
  EXPECT_NE(check("(lp99999999\n.").find("memo index 99999999"), std::string::npos);
  // A big index inside a string's bytes is data, not an opcode: the walk skips it.
  EXPECT_EQ(check(std::string("\x80\x02X\x05\x00\x00\x00r\xff\xff\xff\x7f.", 13)), "");
  // A string longer than what remains: refused before the unpickler allocates it.
  EXPECT_NE(check(std::string("\x80\x02X\xff\xff\xff\x7f" "ab", 9)).find("a string declares 2147483647 bytes where 2 "
                                                                          "remain"),
            std::string::npos);
  // Cut short in an opcode's own argument, or unknown: left to the unpickler, which refuses it.
  EXPECT_EQ(check(std::string("\x80\x02J\x01", 4)), "");
  EXPECT_EQ(check(std::string("\x80\x02\xff", 3)), "");
}

TEST(PickleMemo, ArchivesFoundByFuzzingAreRefusedBeforeLibtorchAllocates) {
  const std::string file = SPLITSHARE_SOURCE_DIR "/fuzz/corpus/export_checkpoint/regression-memo-index-of-5GB";
  const auto message = splitshare::testing::expect_error([&] { splitshare::train::check_archive_pickles(file); });
  EXPECT_NE(message.find(file + ": the pickle "), std::string::npos) << message;
  EXPECT_NE(message.find("memo index 32560395"), std::string::npos) << message;  // x 16 bytes: 5.2 GB
  const std::string longer = SPLITSHARE_SOURCE_DIR "/fuzz/corpus/export_checkpoint/regression-string-longer-than-pickle";
  const auto second = splitshare::testing::expect_error([&] { splitshare::train::check_archive_pickles(longer); });
  EXPECT_NE(second.find("a string declares"), std::string::npos) << second;
}
