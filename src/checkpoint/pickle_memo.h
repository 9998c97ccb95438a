#pragma once

// A guard run on the pickles of a torch archive before libtorch unpickles them. Internal to the
// checkpoint area (checkpoint.cpp, import.cpp) and its tests.

#include <cstddef>
#include <cstdint>
#include <string>

namespace splitshare::train {

/// Walks the opcodes of a pickle (protocols 0-5) and returns why libtorch must not unpickle it,
/// or "" when it may. libtorch's unpickler allocates what the bytes declare before it checks
/// them, so two things are refused: a memo index (PUT, BINPUT, LONG_BINPUT) larger than the
/// pickle (it grows its memo table to the index, 16 bytes an entry: LONG_BINPUT 325,000,000 is
/// 5.2 GB; a real pickle numbers its memo entries from 0, one per PUT of at least two bytes), and a
/// string or bytes length beyond the pickle's end. The walk stops quietly at an opcode it does not
/// know or at the end of the bytes: unpickling then fails by itself.
std::string oversized_memo_index(const uint8_t* data, size_t size);

/// oversized_memo_index of every `*.pkl` record of the torch archive `path`, naming the record;
/// throws (naming `path`) when one is refused. An archive libtorch cannot open is left to it.
void check_archive_pickles(const std::string& path);

}  // namespace splitshare::train
