#pragma once

#include <splitshare/data/datasets.h>
#include <splitshare/nn/classifier.h>
#include <splitshare/run/records.h>

#include <string>
#include <vector>

namespace splitshare::explain {

/// Saves the Grad-CAM figure (validation_grid) of the first `count` validation images
/// (their true labels) as DIR/gradcam.png, the figure a run's report shows.
void write_gradcam_figure(nn::ClassifierImpl& model, data::DataBundle& data, const std::string& dir,
                          int64_t count = 4);

/// write_gradcam_figure for the first seed of every variant of a finished compare, from
/// its checkpoint (OUT/<variant>/seed-<seed>/checkpoint.pt -> gradcam.png beside it).
void write_compare_figures(const std::string& out_dir, const std::vector<run::VariantResult>& results,
                           data::DataBundle& data, int64_t count = 4);

}  // namespace splitshare::explain
