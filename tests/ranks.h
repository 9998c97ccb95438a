#pragma once

#include <splitshare/distributed/distributed.h>

#include "support.h"

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace splitshare::testing {

/// Runs `body(rank, dist)` for ranks 0..world-1 on one thread each, the ranks joined into
/// one process group through a FileStore in `dir`, and expects every rank to finish
/// without an exception (a failing rank's message is reported, not a crash). Build models
/// before calling: initialisation draws from the global generator, which threads race on.
inline void run_ranks(const TempDir& dir, int world,
                      const std::function<void(int rank, const std::shared_ptr<train::Distributed>& dist)>& body) {
  std::vector<std::string> errors(static_cast<size_t>(world));
  std::vector<std::thread> ranks;
  for (int rank = 0; rank < world; ++rank) {
    ranks.emplace_back([&, rank] {
      try {
        body(rank, train::Distributed::connect_file(dir.file("store"), rank, world));
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(rank)] = e.what();
      }
    });
  }
  for (auto& t : ranks) t.join();
  for (int rank = 0; rank < world; ++rank) EXPECT_EQ(errors[static_cast<size_t>(rank)], "") << "rank " << rank;
}

}  // namespace splitshare::testing
