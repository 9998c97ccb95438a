#pragma once

#include <splitshare/data/dataset.h>
#include <splitshare/data/datasets.h>

namespace splitshare::data {

/// The training or test split of an in-memory kind of `spec` (fashion-mnist, mnist, cifar10,
/// cifar100) as read from its files: uint8 [N, C, H, W], labels, class names. Throws naming
/// the folder when it does not exist, and the kind when it is not one of these.
TensorDataset read_in_memory_split(const DataSpec& spec, Split split);

}  // namespace splitshare::data
