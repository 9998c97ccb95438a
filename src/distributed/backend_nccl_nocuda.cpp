#include "backends.h"

#include <c10/util/Exception.h>

namespace splitshare::train::detail {

bool nccl_backend_compiled() { return false; }

c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>&, int64_t, int64_t,
                                                    std::chrono::milliseconds) {
  TORCH_CHECK(false, "this splitshare was built against a libtorch without CUDA, so it has no NCCL backend: "
                     "rebuild against a CUDA libtorch (scripts/setup's torch wheel) or use --backend gloo");
}

}  // namespace splitshare::train::detail
