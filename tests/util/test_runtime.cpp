#include <splitshare/util/runtime.h>

#include "support.h"

#include <malloc.h>
#include <sched.h>

namespace su = splitshare::util;

TEST(Runtime, ConfigureThreadsSetsLibtorchThreadsAndEveryCoreByDefault) {
  EXPECT_EQ(su::configure_threads(3), 3);
  EXPECT_EQ(at::get_num_threads(), 3);
  cpu_set_t set;
  ASSERT_EQ(sched_getaffinity(0, sizeof set, &set), 0);
  EXPECT_EQ(su::configure_threads(0), CPU_COUNT(&set));
  EXPECT_EQ(at::get_num_threads(), CPU_COUNT(&set));
  // The torch wheel's BLAS is MKL, which parallel_mm may call from pool threads.
  if (at::hasMKL()) EXPECT_TRUE(su::blas_single_threaded_in_pool());
}

TEST(Runtime, ConfigureThreadsMakesOpenBlasSingleThreaded) {
  if (su::blas_threads() == 0) GTEST_SKIP() << "libtorch's BLAS is not OpenBLAS (the torch wheel's is MKL)";
  su::configure_threads(2);
  EXPECT_EQ(su::blas_threads(), 1);
  ASSERT_TRUE(su::set_blas_threads(2));
  EXPECT_EQ(su::blas_threads(), 2);
  EXPECT_FALSE(su::blas_single_threaded_in_pool());
  EXPECT_GE(su::configure_threads(0), 1);  // every available core
  EXPECT_EQ(su::blas_threads(), 1);
  EXPECT_THROW(su::set_blas_threads(0), c10::Error);
}

TEST(Runtime, ConfigureAllocatorServesLargeTensorsFromTheHeap) {
  su::configure_allocator();
  // A 16 MiB tensor, freed and allocated again: served from the heap, not from fresh
  // mmap pages (glibc's default threshold starts at 128 KiB).
  const auto mapped_before = mallinfo2().hblkhd;
  for (int i = 0; i < 3; ++i) {
    auto t = torch::ones({4 << 20});
    EXPECT_EQ(mallinfo2().hblkhd, mapped_before) << "allocation " << i << " was mmapped";
    EXPECT_EQ(t.sum().item<float>(), static_cast<float>(4 << 20));
  }
}
