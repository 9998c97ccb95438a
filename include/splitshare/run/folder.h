#pragma once

#include <string>
#include <vector>

namespace splitshare::run {

/// What a command does when the folder it writes already holds results (holds_results).
enum class Existing {
  /// Refuse, naming the folder and the choices the caller gives.
  kRefuse,
  /// Keep them: the command continues or reuses them (train --resume, compare).
  kContinue,
  /// Move the old folder aside to DIR.old-<YYYYMMDD-HHMMSS> and start an empty one
  /// (train --overwrite); nothing is deleted.
  kMoveAside,
};

/// Whether `dir` holds what a run leaves: checkpoint.pt, best.pt, metrics.jsonl,
/// summary.json, compare.json, gated.pt, select.json, gradcam.json, or what `pack` writes
/// (pack.json while packing, dataset.json when done).
bool holds_results(const std::string& dir);

/// A command's claim on the folder it writes: an advisory lock (flock) on DIR/.lock, which the
/// kernel releases on any exit, kill -9 included. While one process holds it, a second claim
/// is refused at once with the holder's command, pid and host. When the claim ends without
/// results in the folder (the command was refused or failed before its first checkpoint), what
/// it added is removed: the folder itself when it created it, and a folder moved aside comes
/// back; so a refused run leaves nothing behind.
class FolderClaim {
 public:
  /// Claims `dir` (created when missing) for `command` (e.g. "splitshare train"). With results
  /// already in it: `existing` says what happens; kRefuse's message ends with `choices`.
  FolderClaim(const std::string& dir, const std::string& command, Existing existing = Existing::kRefuse,
              const std::string& choices = "");
  ~FolderClaim();
  FolderClaim(const FolderClaim&) = delete;
  FolderClaim& operator=(const FolderClaim&) = delete;

  const std::string& dir() const { return dir_; }
  /// Where the old results went with Existing::kMoveAside (empty otherwise).
  const std::string& moved_to() const { return moved_to_; }
  /// Whether results were in the folder when it was claimed.
  bool had_results() const { return had_results_; }

 private:
  void lock(const std::string& command);
  void release();

  std::string dir_;
  std::string moved_to_;
  int fd_ = -1;
  bool created_ = false;
  bool had_results_ = false;
  /// The folder's entries before its lock was taken, sorted.
  std::vector<std::string> before_;
};

/// `base-YYYY-MM-DD-N` with the smallest N >= 1 that names nothing yet (e.g. runs/train-2026-12-06-1):
/// the default output folder of a command, so a second run never writes into the first.
std::string fresh_folder(const std::string& base);

}  // namespace splitshare::run
