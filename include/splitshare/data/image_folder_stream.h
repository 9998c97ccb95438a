#pragma once

#include <splitshare/data/datasets.h>

#include <string>

namespace splitshare::data {

/// One class-per-folder `root` read through the photo pipeline (whatever its images' size) as
/// one stream, for a caller that opens its training and evaluation folders one at a time (the
/// Python loader): open_image_folder_data's training stream (shuffled, augmented when
/// options.augment(), last batch dropped) in `train` when `train`, else its validation stream
/// (in order, every sample once) in `val`; with the folder's classes, class counts and evaluation
/// preprocessing. options.limit_train() / limit_val() and class_map() apply.
DataBundle open_image_folder_stream(const std::string& root, const DataOptions& options, bool train);

}  // namespace splitshare::data
