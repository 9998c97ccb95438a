#include "splitshare/option_values.h"

#include <splitshare/util/numbers.h>

#include <c10/util/Exception.h>

#include <cstdio>

#include <type_traits>

namespace splitshare::cli {
namespace {

template <typename T>
void parse_into(const std::string& text, T& store) {
  const auto value = util::parse_number<T>(text);
  if (!value) throw NotANumber(text, number_kind<T>());
  store = *value;
}

template <typename T>
void parse_into(const std::string& text, std::vector<T>& store) {
  size_t start = 0;
  while (true) {
    const auto comma = text.find(',', start);
    const auto value = util::parse_number<T>(text.substr(start, comma == std::string::npos ? comma : comma - start));
    if (!value) {
      throw NotANumber(text, std::string("a comma-separated list of ") +
                                 (std::is_floating_point_v<T> ? "numbers" : "whole numbers"));
    }
    store.push_back(*value);
    if (comma == std::string::npos) return;
    start = comma + 1;
  }
}

template <typename T>
class NumberValue : public cxxopts::values::standard_value<T> {
 public:
  std::shared_ptr<cxxopts::Value> clone() const override { return std::make_shared<NumberValue<T>>(*this); }
  void parse(const std::string& text) const override { parse_into(text, *this->m_store); }
};

class PathList : public cxxopts::values::standard_value<std::vector<std::string>> {
 public:
  std::shared_ptr<cxxopts::Value> clone() const override { return std::make_shared<PathList>(*this); }
  void parse(const std::string& text) const override { m_store->push_back(text); }
};

}  // namespace

template <typename T>
const char* number_kind() {
  if constexpr (std::is_floating_point_v<T>) return "a number";
  if constexpr (std::is_unsigned_v<T>) return "a whole number >= 0";
  return "a whole number";
}

NotANumber::NotANumber(std::string text, std::string kind)
    : cxxopts::exceptions::parsing("'" + text + "' is not " + kind),
      text_(std::move(text)),
      kind_(std::move(kind)) {}

template <typename T>
std::shared_ptr<cxxopts::Value> number() {
  return std::make_shared<NumberValue<T>>();
}

template const char* number_kind<int>();
template const char* number_kind<int64_t>();
template const char* number_kind<uint64_t>();
template const char* number_kind<double>();
template std::shared_ptr<cxxopts::Value> number<int>();
template std::shared_ptr<cxxopts::Value> number<int64_t>();
template std::shared_ptr<cxxopts::Value> number<uint64_t>();
template std::shared_ptr<cxxopts::Value> number<double>();
template std::shared_ptr<cxxopts::Value> number<std::vector<int64_t>>();
template std::shared_ptr<cxxopts::Value> number<std::vector<double>>();

template <typename T>
T in_range(const cxxopts::ParseResult& args, const std::string& name, T low, T high) {
  const T value = args[name].as<T>();
  const auto shown = [](T v) {
    if constexpr (std::is_integral_v<T>) return std::to_string(v);
    char text[32];
    std::snprintf(text, sizeof text, "%g", static_cast<double>(v));
    return std::string(text);
  };
  TORCH_CHECK(value >= low && value <= high, "--", name, ": ", shown(value), " is outside its range [", shown(low),
              ", ", shown(high), "]");
  return value;
}

template int64_t in_range<int64_t>(const cxxopts::ParseResult&, const std::string&, int64_t, int64_t);
template double in_range<double>(const cxxopts::ParseResult&, const std::string&, double, double);

std::shared_ptr<cxxopts::Value> paths() { return std::make_shared<PathList>(); }

}  // namespace splitshare::cli
