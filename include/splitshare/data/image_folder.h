#pragma once

#include <splitshare/data/source.h>

#include <string>

namespace splitshare::data {

/// Opens an ImageNet-layout pair of folders (one sub-folder per class) as a DataBundle.
DataBundle open_image_folder_data(const std::string& train_root, const std::string& val_root,
                                  const DataOptions& options);

}  // namespace splitshare::data
