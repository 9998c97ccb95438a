#include "pickle_memo.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/torch.h>

#include <memory>

namespace splitshare::train {
namespace {

// What follows an opcode: a fixed number of bytes, a little-endian length of 1, 4 or 8 bytes
// and that many bytes, or one or two newline-terminated lines.
enum class Arg { kNone, kFixed, kLength, kLines };

struct Opcode {
  Arg arg = Arg::kNone;
  int bytes = 0;  // kFixed: the argument; kLength: the length field; kLines: the line count
  bool known = false;
};

Opcode opcode(uint8_t op) {
  switch (op) {
    case '(': case '.': case '0': case '1': case '2': case 'N': case 0x88: case 0x89: case ']': case 'a':
    case 'e': case 'l': case ')': case 't': case 0x85: case 0x86: case 0x87: case '}': case 'd': case 's':
    case 'u': case 0x8f: case 0x90: case 0x91: case 'R': case 'b': case 'o': case 0x81: case 0x92: case 0x93:
    case 0x94: case 'Q': case 0x97: case 0x98:
      return {Arg::kNone, 0, true};
    case 'K': case 'h': case 'q': case 0x80: case 0x82: return {Arg::kFixed, 1, true};
    case 'M': case 0x83: return {Arg::kFixed, 2, true};
    case 'J': case 'j': case 'r': case 0x84: return {Arg::kFixed, 4, true};
    case 'G': case 0x95: return {Arg::kFixed, 8, true};
    case 'U': case 'C': case 0x8c: case 0x8a: return {Arg::kLength, 1, true};
    case 'T': case 'B': case 'X': case 0x8b: return {Arg::kLength, 4, true};
    case 0x8d: case 0x8e: case 0x96: return {Arg::kLength, 8, true};
    case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': case 'p': return {Arg::kLines, 1, true};
    case 'c': case 'i': return {Arg::kLines, 2, true};
    default: return {};
  }
}

uint64_t little_endian(const uint8_t* p, int bytes) {
  uint64_t value = 0;
  for (int i = bytes - 1; i >= 0; --i) value = (value << 8) | p[i];
  return value;
}

}  // namespace

std::string oversized_memo_index(const uint8_t* data, size_t size) {
  size_t at = 0;
  while (at < size) {
    const uint8_t op = data[at++];
    const auto code = opcode(op);
    if (!code.known || op == '.') return "";
    uint64_t memo = 0;
    bool is_memo = false;
    if (code.arg == Arg::kFixed || code.arg == Arg::kLength) {
      if (size - at < static_cast<size_t>(code.bytes)) return "";
      const auto value = little_endian(data + at, code.bytes);
      at += code.bytes;
      if (code.arg == Arg::kLength) {
        // libtorch's unpickler allocates a string's declared length before it finds the end.
        if (value > size - at) {
          return "a string declares " + std::to_string(value) + " bytes where " + std::to_string(size - at) +
                 " remain (an edited or cut-short file)";
        }
        at += value;
      }
      is_memo = op == 'q' || op == 'r';
      memo = value;
    } else if (code.arg == Arg::kLines) {
      const size_t line_start = at;
      for (int line = 0; line < code.bytes; ++line) {
        while (at < size && data[at] != '\n') ++at;
        if (at++ >= size) return "";
      }
      if (op == 'p') {
        is_memo = true;
        const std::string text(reinterpret_cast<const char*>(data + line_start), at - 1 - line_start);
        memo = text.find_first_not_of("0123456789") == std::string::npos && text.size() < 19 ? std::stoull(text) : size;
      }
    }
    if (is_memo && memo > size) {
      return "its memo index " + std::to_string(memo) + " is larger than the pickle's " + std::to_string(size) +
             " bytes (an edited file: unpickling it would allocate " + std::to_string(memo * 16) + " bytes)";
    }
  }
  return "";
}

void check_archive_pickles(const std::string& path) {
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception&) {
    return;  // libtorch refuses it when it loads it, with its own message
  }
  std::string record, problem;
  try {
    for (const auto& name : reader->getAllRecords()) {
      if (name.size() < 4 || name.compare(name.size() - 4, 4, ".pkl") != 0) continue;
      const auto [bytes, size] = reader->getRecord(name);
      problem = oversized_memo_index(static_cast<const uint8_t*>(bytes.get()), size);
      record = name;
      if (!problem.empty()) break;
    }
  } catch (const std::exception& e) {
    const std::string what = e.what();
    TORCH_CHECK(false, path, ": not a readable torch archive (truncated or not a checkpoint): ",
                what.substr(0, what.find('\n')));
  }
  TORCH_CHECK(problem.empty(), path, ": the pickle ", record, " cannot be read: ", problem);
}

}  // namespace splitshare::train
