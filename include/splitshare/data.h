#pragma once

/// splitshare's data area: datasets, image folders, loaders, samplers, transforms and augmentation.

#include <splitshare/data/augment.h>
#include <splitshare/data/cifar.h>
#include <splitshare/data/dataset.h>
#include <splitshare/data/datasets.h>
#include <splitshare/data/fashion_mnist.h>
#include <splitshare/data/idx.h>
#include <splitshare/data/image_folder.h>
#include <splitshare/data/loader.h>
#include <splitshare/data/transforms.h>
