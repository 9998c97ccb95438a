#pragma once

/// splitshare's bench area: throughput benchmarks against PyTorch eager.

#include <splitshare/bench/peak.h>
#include <splitshare/bench/suite.h>
#include <splitshare/bench/throughput.h>
