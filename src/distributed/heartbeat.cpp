#include "distributed_state.h"

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <atomic>
#include <future>
#include <iomanip>
#include <mutex>
#include <sstream>
#include <thread>

namespace splitshare::train::detail {
namespace {

using Clock = std::chrono::steady_clock;

std::string key_of(int64_t rank) { return "alive/" + std::to_string(rank); }

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

}  // namespace

struct Heartbeat::Shared {
  std::string host, prefix;
  int64_t port = 0, rank = 0, world = 1, timeout = 300;
  std::chrono::milliseconds interval{1000};
  std::atomic<bool> stop{false};
  mutable std::mutex mutex;
  // Per rank: the last counter read and when it last changed; when the store last answered.
  c10::intrusive_ptr<c10d::Store> store;  // set once connected
  std::vector<std::string> counters;
  std::vector<Clock::time_point> changed;
  Clock::time_point answered = Clock::now();

  void run() {
    c10::intrusive_ptr<c10d::Store> store;  // this thread's; `this->store` shares it
    try {
      c10d::TCPStoreOptions options;
      options.port = static_cast<uint16_t>(port);
      options.isServer = false;
      options.timeout = std::chrono::seconds(timeout);
      store = c10::make_intrusive<c10d::PrefixStore>(prefix, c10::make_intrusive<c10d::TCPStore>(host, options));
      {
        std::lock_guard<std::mutex> lock(mutex);
        this->store = store;
      }
      std::vector<std::string> keys;
      for (int64_t r = 0; r < world; ++r) keys.push_back(key_of(r));
      store->add(key_of(rank), 1);
      store->wait(keys);
      while (!stop.load()) {
        store->add(key_of(rank), 1);
        const auto values = store->multiGet(keys);
        record(values);
        std::this_thread::sleep_for(interval);
      }
    } catch (const std::exception&) {
      // The store went away (its host died or the job is ending): silent() reports the gap.
    }
  }

  void record(const std::vector<std::vector<uint8_t>>& values) {
    std::lock_guard<std::mutex> lock(mutex);
    const auto now = Clock::now();
    answered = now;
    for (size_t r = 0; r < values.size(); ++r) {
      std::string value(values[r].begin(), values[r].end());
      if (value != counters[r]) {
        counters[r] = value;
        changed[r] = now;
      }
    }
  }
};

Heartbeat::Heartbeat(const std::string& host, int64_t port, const std::string& prefix, int64_t rank, int64_t world_size,
                     int64_t timeout_seconds)
    : shared_(std::make_shared<Shared>()) {
  auto& s = *shared_;
  s.host = host;
  s.prefix = prefix;
  s.port = port;
  s.rank = rank;
  s.world = world_size;
  s.timeout = timeout_seconds;
  // One store round trip per rank a second, fewer in large jobs, more often with short timeouts.
  const auto ms = std::clamp<int64_t>(timeout_seconds * 1000 / 5, 200, 1000) * std::max<int64_t>(1, world_size / 32);
  s.interval = std::chrono::milliseconds(ms);
  s.counters.assign(static_cast<size_t>(world_size), "");
  s.changed.assign(static_cast<size_t>(world_size), Clock::now());
  std::thread([shared = shared_] { shared->run(); }).detach();
}

Heartbeat::~Heartbeat() { shared_->stop = true; }

std::string Heartbeat::silent(const std::vector<std::string>& addresses) const {
  const auto& s = *shared_;
  std::lock_guard<std::mutex> lock(s.mutex);
  const double limit = 3.0 * std::chrono::duration<double>(s.interval).count();
  std::ostringstream out;
  out << std::fixed << std::setprecision(1);
  const double quiet = seconds_since(s.answered);
  if (quiet > limit) {
    out << "the rendezvous store on rank 0 (" << (addresses.empty() ? s.host : addresses[0])
        << ") has not answered for " << quiet << " s";
    return out.str();
  }
  for (size_t r = 0; r < s.changed.size(); ++r) {
    const double since = seconds_since(s.changed[r]);
    if (static_cast<int64_t>(r) == s.rank || since <= limit) continue;
    out << (out.tellp() > 0 ? ", " : "") << "rank " << r;
    if (r < addresses.size()) out << " (" << addresses[r] << ")";
    out << " silent for " << since << " s";
  }
  return out.str();
}

std::string Heartbeat::first_fault(const std::string& mine, bool consequence, std::chrono::milliseconds limit) const {
  c10::intrusive_ptr<c10d::Store> store;
  {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    store = shared_->store;
  }
  if (!store) return "";
  // On a thread of its own: a store that stopped answering must not hold up this rank's exit.
  auto result = std::make_shared<std::promise<std::string>>();
  auto answer = result->get_future();
  const auto grace = consequence ? limit / 2 : std::chrono::milliseconds(0);
  std::thread([store, mine, result, grace] {
    try {
      // A closed connection is usually the echo of a peer that failed first (Gloo closes a
      // pair when its wait runs out): give that peer a moment to say what it saw.
      const auto until = Clock::now() + grace;
      while (Clock::now() < until && !store->check({"first_fault"})) {
        std::this_thread::sleep_for(std::chrono::milliseconds(25));
      }
      const std::vector<uint8_t> none, ours(mine.begin(), mine.end());
      const auto first = store->compareSet("first_fault", none, ours);
      result->set_value(std::string(first.begin(), first.end()));
    } catch (const std::exception&) {
      result->set_value("");
    }
  }).detach();
  if (answer.wait_for(limit) != std::future_status::ready) return "";
  return answer.get();
}

}  // namespace splitshare::train::detail
