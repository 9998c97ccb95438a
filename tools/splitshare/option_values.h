#pragma once

#include <cxxopts.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace splitshare::cli {

/// What a number of type T is called in messages: "a number", "a whole number", ...
template <typename T>
const char* number_kind();

/// Thrown while argv is parsed when a numeric option's value is not a number of its type;
/// cli::parse turns it into a message that names the option.
class NotANumber : public cxxopts::exceptions::parsing {
 public:
  NotANumber(std::string text, std::string kind);
  /// The value as given.
  const std::string& text() const { return text_; }
  /// number_kind of the option's type ("comma-separated ..." for lists).
  const std::string& kind() const { return kind_; }

 private:
  std::string text_, kind_;
};

/// The cxxopts value of a numeric option: T = int, int64_t, uint64_t, double, or a
/// std::vector of one of them (comma-separated; a repeated flag appends). Read it with
/// `args[name].as<T>()`; a value that util::parse_number refuses throws NotANumber.
template <typename T>
std::shared_ptr<cxxopts::Value> number();

/// `args[name]` (an option declared with number<T>()), refused outside [low, high] with a message
/// that names the option, the value and the range.
template <typename T>
T in_range(const cxxopts::ParseResult& args, const std::string& name, T low, T high);

/// The cxxopts value of an option that takes one path per flag, repeated for more
/// (std::vector<std::string>): unlike cxxopts' lists, a comma is part of the path.
std::shared_ptr<cxxopts::Value> paths();

}  // namespace splitshare::cli
