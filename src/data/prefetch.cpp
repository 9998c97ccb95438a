#include <splitshare/data/loader.h>

#include <future>

namespace splitshare::data {
namespace {

class PrefetchingStream final : public BatchStream {
 public:
  explicit PrefetchingStream(std::unique_ptr<BatchStream> inner) : inner_(std::move(inner)) {
    TORCH_CHECK(inner_ != nullptr, "prefetching: no stream");
  }
  ~PrefetchingStream() override { settle(); }

  int64_t size() const override { return inner_->size(); }
  int64_t batches_per_epoch() const override { return inner_->batches_per_epoch(); }
  int64_t batch_size() const override { return inner_->batch_size(); }
  int64_t skipped() const override { return inner_->skipped(); }
  void reset(int64_t epoch) override { reset_at(epoch, 0); }
  void reset_at(int64_t epoch, int64_t consumed) override {
    settle();
    inner_->reset_at(epoch, consumed);
    fetch();
  }
  std::optional<Batch> next() override {
    TORCH_CHECK(pending_.valid(), "prefetching: next() called before reset(epoch)");
    auto batch = pending_.get();  // rethrows the inner stream's error here, on the caller's thread
    if (batch) fetch();
    return batch;
  }

 private:
  void fetch() {
    pending_ = std::async(std::launch::async, [this] { return inner_->next(); });
  }
  // Waits for the batch in flight (its result or error is dropped: an epoch restarts).
  void settle() {
    if (!pending_.valid()) return;
    try {
      pending_.get();
    } catch (const std::exception&) {
    }
  }

  std::unique_ptr<BatchStream> inner_;
  std::future<std::optional<Batch>> pending_;
};

}  // namespace

std::unique_ptr<BatchStream> prefetching(std::unique_ptr<BatchStream> inner) {
  return std::make_unique<PrefetchingStream>(std::move(inner));
}

}  // namespace splitshare::data
