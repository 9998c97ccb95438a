#pragma once

/// splitshare's run area: the records of a run folder (metrics.jsonl, summary.json, compare.json)
/// and the claim a command holds on the folder it writes.

#include <splitshare/run/folder.h>
#include <splitshare/run/records.h>
