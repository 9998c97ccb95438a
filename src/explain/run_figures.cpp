#include <splitshare/explain/run_figures.h>

#include <splitshare/explain/figure.h>
#include <splitshare/image/png.h>
#include <splitshare/checkpoint/checkpoint.h>

#include <filesystem>

namespace splitshare::explain {

namespace fs = std::filesystem;

void write_gradcam_figure(nn::ClassifierImpl& model, data::DataBundle& data, const std::string& dir,
                          int64_t count) {
  TORCH_CHECK(data.val, "write_gradcam_figure: the data bundle has no validation stream");
  const auto grid = validation_grid(model, *data.val, data.preprocess, data.classes, count);
  data::write_png((fs::path(dir) / "gradcam.png").string(), grid);
}

void write_compare_figures(const std::string& out_dir, const std::vector<run::VariantResult>& results,
                           data::DataBundle& data, int64_t count) {
  for (const auto& variant : results) {
    if (variant.seeds.empty()) continue;
    const auto dir = fs::path(out_dir) / variant.name / ("seed-" + std::to_string(variant.seeds[0]));
    auto loaded = train::load_checkpoint((dir / "checkpoint.pt").string());
    write_gradcam_figure(*loaded.model, data, dir.string(), count);
  }
}

}  // namespace splitshare::explain
