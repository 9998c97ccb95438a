#pragma once

/// splitshare's nn area: backbones, heads (linear, k-FC, Split-and-Share), the classifier, the gate module and kernels.

#include <splitshare/nn/batch_norm.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/nn/gate.h>
#include <splitshare/nn/heads.h>
#include <splitshare/nn/inference.h>
#include <splitshare/nn/kernels/fused_conv.h>
#include <splitshare/nn/kernels/quantized_conv.h>
#include <splitshare/nn/predictor.h>
#include <splitshare/nn/quantized.h>
#include <splitshare/nn/resnet.h>
#include <splitshare/nn/split_and_share.h>
#include <splitshare/nn/sync_batch_norm.h>
