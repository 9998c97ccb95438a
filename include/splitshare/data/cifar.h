#pragma once

#include <splitshare/data/dataset.h>

#include <string>

namespace splitshare::data {

/// Reads the binary version of CIFAR-10: `data_batch_1.bin` … `data_batch_5.bin`
/// (Split::kTrain, 50000 images) or `test_batch.bin` (Split::kTest, 10000 images),
/// records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32).
/// `dir` is the folder holding the .bin files or its parent holding
/// `cifar-10-batches-bin`. Class names come from `batches.meta.txt` when present,
/// otherwise the standard ten ("airplane" … "truck").
/// Returns images uint8 [N, 3, 32, 32], labels int64 [N] in [0, 10).
/// Throws naming the file when it is missing, its size is not a whole number of
/// records, or a label is out of range.
TensorDataset read_cifar10(const std::string& dir, Split split);

/// Reads the binary version of CIFAR-100: `train.bin` (50000 images) or `test.bin`
/// (10000 images), records of 1 coarse label byte + 1 fine label byte + 3072 pixel
/// bytes. Uses the fine labels (100 classes). `dir` is the folder holding the .bin
/// files or its parent holding `cifar-100-binary`. Class names come from
/// `fine_label_names.txt` when present, otherwise "0" … "99".
/// Returns images uint8 [N, 3, 32, 32], labels int64 [N] in [0, 100).
TensorDataset read_cifar100(const std::string& dir, Split split);

}  // namespace splitshare::data
