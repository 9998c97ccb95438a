#pragma once

/// splitshare's distributed area: process groups, gradient averaging, rendezvous, heartbeats and launch.

#include <splitshare/distributed/distributed.h>
