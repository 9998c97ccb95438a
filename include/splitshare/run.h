#pragma once

/// splitshare's run area: the records of a run folder (metrics.jsonl, summary.json, compare.json).

#include <splitshare/run/records.h>
