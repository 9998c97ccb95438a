#include <splitshare/util/runtime.h>

#include "support.h"

#include <malloc.h>

namespace util = splitshare::util;

TEST(Runtime, ConfigureThreadsSetsLibtorchAndMakesOpenBlasSingleThreaded) {
  EXPECT_EQ(util::configure_threads(3), 3);
  EXPECT_EQ(at::get_num_threads(), 3);
  if (util::blas_threads() == 0) GTEST_SKIP() << "libtorch's BLAS is not OpenBLAS";
  EXPECT_EQ(util::blas_threads(), 1);
  ASSERT_TRUE(util::set_blas_threads(2));
  EXPECT_EQ(util::blas_threads(), 2);
  EXPECT_GE(util::configure_threads(0), 1);  // every available core
  EXPECT_EQ(util::blas_threads(), 1);
  EXPECT_THROW(util::set_blas_threads(0), c10::Error);
}

TEST(Runtime, ConfigureAllocatorServesLargeTensorsFromTheHeap) {
  util::configure_allocator();
  // A 16 MiB tensor, freed and allocated again: served from the heap, not from fresh
  // mmap pages (glibc's default threshold starts at 128 KiB).
  const auto mapped_before = mallinfo2().hblkhd;
  for (int i = 0; i < 3; ++i) {
    auto t = torch::ones({4 << 20});
    EXPECT_EQ(mallinfo2().hblkhd, mapped_before) << "allocation " << i << " was mmapped";
    EXPECT_EQ(t.sum().item<float>(), static_cast<float>(4 << 20));
  }
}
