#include "fuzz_target.h"

#include <splitshare/checkpoint/checkpoint.h>

#include <string>

// The input is the text of a checkpoint's splitshare.json. Accepted metadata must
// survive a round trip through its JSON form unchanged.
namespace splitshare::fuzz {

void checkpoint_metadata(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  train::CheckpointMetadata metadata;
  try {
    metadata = train::parse_checkpoint_metadata(text, "fuzz.json");
  } catch (const c10::Error& e) {
    require_named(e, "fuzz.json");
    return;
  }
  const auto json = train::to_json(metadata);
  train::CheckpointMetadata again;
  try {
    again = train::metadata_from_json(json, "round trip");
  } catch (const c10::Error& e) {
    require(false, "accepted metadata does not survive to_json:", e.what_without_backtrace());
  }
  require(train::to_json(again) == json, "metadata changes in a round trip:", json.dump());
}

}  // namespace splitshare::fuzz

SPLITSHARE_FUZZ_ENTRY(checkpoint_metadata)
