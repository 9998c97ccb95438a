#pragma once

#include <charconv>
#include <cmath>
#include <optional>
#include <string>
#include <type_traits>

namespace splitshare::util {

/// `text` as a number of type T (an integer type or double) when the whole of it is one: every
/// character used (no "0,5", "0.2abc", "0x10", "64k", no spaces), finite (no nan or inf) and
/// within T's range; nullopt otherwise. The one parser of numbers given by users: command-line
/// options and environment variables.
template <typename T>
std::optional<T> parse_number(const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  const auto [used, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || used != end) return std::nullopt;
  if constexpr (std::is_floating_point_v<T>) {
    if (!std::isfinite(value)) return std::nullopt;
  }
  return value;
}

}  // namespace splitshare::util
