#pragma once

#include <splitshare/data/dataset.h>

#include <nlohmann/json.hpp>

namespace splitshare::data {

/// `preprocess` as checkpoint metadata records it: {"channels", "resize", "resize_mode", "crop",
/// "size", "mean", "std"}, absent sizes as null. (Read back, with its checks, by the checkpoint
/// reader.)
nlohmann::json to_json(const Preprocess& preprocess);

}  // namespace splitshare::data
