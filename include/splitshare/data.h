#pragma once

/// splitshare's data area: datasets, image folders, WebDataset shards (reading and packing), loaders,
/// samplers, transforms and augmentation.

#include <splitshare/data/augment.h>
#include <splitshare/data/cifar.h>
#include <splitshare/data/dataset.h>
#include <splitshare/data/datasets.h>
#include <splitshare/data/fashion_mnist.h>
#include <splitshare/data/idx.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/data/image_folder_stream.h>
#include <splitshare/data/in_memory.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/pack.h>
#include <splitshare/data/preprocess_json.h>
#include <splitshare/data/transforms.h>
#include <splitshare/data/webdataset.h>
