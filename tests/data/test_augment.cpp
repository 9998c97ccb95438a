// torchvision's automatic augmentations (RandAugment, TrivialAugmentWide, AutoAugment) and
// RandomErasing: the ops against torchvision.transforms.v2 on the same uint8 images, the
// policies' draws against torchvision's own tables, and the photo loader's use of both.
#include <splitshare/data/augment.h>
#include <splitshare/data/image_folder.h>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "image_writers.h"
#include "support.h"

namespace fs = std::filesystem;
namespace sd = splitshare::data;
namespace st = splitshare::testing;
using sd::AugmentOp;
using sd::AutoAugmentKind;

namespace {

const std::vector<AugmentOp> kAllOps = {
    AugmentOp::kIdentity,   AugmentOp::kShearX,    AugmentOp::kShearY,    AugmentOp::kTranslateX,
    AugmentOp::kTranslateY, AugmentOp::kRotate,    AugmentOp::kBrightness, AugmentOp::kColor,
    AugmentOp::kContrast,   AugmentOp::kSharpness, AugmentOp::kPosterize, AugmentOp::kSolarize,
    AugmentOp::kAutoContrast, AugmentOp::kEqualize, AugmentOp::kInvert};

const std::vector<AutoAugmentKind> kPolicies = {AutoAugmentKind::kRandAugment, AutoAugmentKind::kTrivialAugment,
                                                AutoAugmentKind::kAutoAugment};

// Uniformly random uint8 [C, H, W] pixels from a seed.
torch::Tensor random_image(int64_t channels, int64_t height, int64_t width, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto image = torch::empty({channels, height, width}, torch::kUInt8);
  for (int64_t i = 0; i < image.numel(); ++i) image.data_ptr<uint8_t>()[i] = static_cast<uint8_t>(rng() >> 56);
  return image;
}

// The test images: random pixels (non-square, square for rotate's 90-degree fast path, grey),
// a smooth picture, and a low-contrast one with a flat channel (autocontrast's and
// equalize's degenerate cases).
std::vector<torch::Tensor> test_images() {
  auto low = (random_image(3, 9, 11, 4) / 16 + 100).to(torch::kUInt8);
  low[1].fill_(77);
  return {random_image(3, 37, 45, 1), random_image(3, 40, 40, 2), random_image(1, 33, 29, 3),
          st::test_picture(3, 31, 26, 5), low};
}

// Magnitudes to check each op at: the policies' bins (e.g. shear 0.09 = RandAugment's bin 9 of
// 0.3, 0.99 = TrivialAugmentWide's largest), both signs, and edge cases (a translation wider
// than the image, rotations by multiples of 90 degrees, posterize to 0 and 8 bits).
std::vector<double> magnitudes_of(AugmentOp op) {
  switch (op) {
    case AugmentOp::kShearX:
    case AugmentOp::kShearY: return {0.09, -0.3, 0.99, -0.5, 0.15};
    case AugmentOp::kTranslateX:
    case AugmentOp::kTranslateY: return {13.5, -32.0, 3.99, -0.7, 60.0};
    case AugmentOp::kRotate: return {9.0, -9.0, 30.0, -135.0, 90.0, -90.0, 180.0, 45.0, 0.0};
    case AugmentOp::kBrightness:
    case AugmentOp::kColor:
    case AugmentOp::kContrast:
    case AugmentOp::kSharpness: return {-0.99, -0.5, 0.27, 0.9, 0.99, 0.0};
    case AugmentOp::kPosterize: return {0.0, 1.0, 4.0, 7.0, 8.0};
    case AugmentOp::kSolarize: return {0.0, 0.3, 0.7, 1.0};
    default: return {0.0};
  }
}

struct TorchvisionCase {
  size_t image = 0;
  std::vector<sd::AugmentStep> steps;
  torch::Tensor ours;
};

// Runs torchvision's _AutoAugmentBase._apply_image_or_video_transform (the function its
// policies call, nearest interpolation, no fill) step by step on each case's image; returns
// the outputs, or an empty vector (and a failure) when Python fails.
std::vector<torch::Tensor> torchvision_outputs(const std::vector<torch::Tensor>& images,
                                               const std::vector<TorchvisionCase>& cases) {
  st::TempDir dir;
  std::ostringstream list;
  list.precision(17);
  for (size_t i = 0; i < images.size(); ++i) {
    const auto& image = images[i];
    st::write_file(dir.file("img" + std::to_string(i) + ".u8"),
                   std::string(reinterpret_cast<const char*>(image.data_ptr<uint8_t>()), image.numel()));
    list << "image " << image.size(0) << " " << image.size(1) << " " << image.size(2) << "\n";
  }
  for (const auto& c : cases) {
    list << "case " << c.image;
    for (const auto& step : c.steps) list << " " << sd::to_string(step.op) << " " << step.magnitude;
    list << "\n";
  }
  st::write_file(dir.file("cases.txt"), list.str());
  const std::string script =
      "import sys, numpy as np, torch\n"
      "from torchvision.transforms import v2, InterpolationMode\n"
      "d = sys.argv[1]\n"
      "aug = v2.RandAugment()\n"
      "shapes, k = [], 0\n"
      "for line in open(f'{d}/cases.txt'):\n"
      "    f = line.split()\n"
      "    if f[0] == 'image':\n"
      "        shapes.append(tuple(map(int, f[1:])))\n"
      "        continue\n"
      "    i = int(f[1])\n"
      "    img = torch.from_numpy(np.fromfile(f'{d}/img{i}.u8', dtype=np.uint8).reshape(shapes[i]))\n"
      "    for name, m in zip(f[2::2], f[3::2]):\n"
      "        img = aug._apply_image_or_video_transform(img, name, float(m), InterpolationMode.NEAREST, aug._fill)\n"
      "    img.contiguous().numpy().tofile(f'{d}/out{k}.u8')\n"
      "    k += 1\n";
  st::write_file(dir.file("tv.py"), script);
  std::string output;
  if (st::run_command(std::string(st::python()) + " " + dir.file("tv.py") + " " + dir.path().string(), &output) != 0) {
    ADD_FAILURE() << output;
    return {};
  }
  std::vector<torch::Tensor> outputs;
  for (size_t k = 0; k < cases.size(); ++k) {
    outputs.push_back(st::read_raw(dir.file("out" + std::to_string(k) + ".u8"), torch::kUInt8,
                                   images[cases[k].image].sizes()));
  }
  return outputs;
}

void expect_same_as_torchvision(const std::vector<torch::Tensor>& images, const std::vector<TorchvisionCase>& cases) {
  auto reference = torchvision_outputs(images, cases);
  ASSERT_EQ(reference.size(), cases.size());
  for (size_t k = 0; k < cases.size(); ++k) {
    std::ostringstream what;
    what << "image " << cases[k].image << " " << images[cases[k].image].sizes() << ":";
    for (const auto& step : cases[k].steps) what << " " << sd::to_string(step.op) << "(" << step.magnitude << ")";
    ASSERT_EQ(cases[k].ours.sizes(), reference[k].sizes()) << what.str();
    // Same libtorch kernels in the same order: exact, every op (no rounding difference to allow for).
    auto diff = (cases[k].ours.to(torch::kInt32) - reference[k].to(torch::kInt32)).abs();
    EXPECT_EQ(diff.max().item<int32_t>(), 0)
        << what.str() << ": " << diff.gt(0).sum().item<int64_t>() << " of " << diff.numel() << " values differ";
  }
}

}  // namespace

TEST(AugmentOps, MatchTorchvisionOnUint8Images) {
  if (!st::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  auto images = test_images();
  std::vector<TorchvisionCase> cases;
  for (size_t i = 0; i < images.size(); ++i) {
    for (AugmentOp op : kAllOps) {
      for (double magnitude : magnitudes_of(op)) {
        cases.push_back({i, {{op, magnitude}}, sd::apply_augment_op(images[i], op, magnitude)});
      }
    }
  }
  expect_same_as_torchvision(images, cases);
  // The ops really change the image (the comparison is not between two copies of the input).
  EXPECT_FALSE(torch::equal(sd::apply_augment_op(images[0], AugmentOp::kShearX, 0.3), images[0]));
  EXPECT_FALSE(torch::equal(sd::apply_augment_op(images[0], AugmentOp::kEqualize, 0), images[0]));
}

TEST(AutoAugment, PoliciesMatchTorchvisionStepForStep) {
  if (!st::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  auto images = test_images();
  std::vector<TorchvisionCase> cases;
  for (AutoAugmentKind kind : kPolicies) {
    for (uint64_t seed = 0; seed < 12; ++seed) {
      const size_t i = seed % images.size();
      std::mt19937_64 draw(seed), apply(seed);
      auto steps = sd::sample_auto_augment(kind, images[i].size(1), images[i].size(2), draw);
      cases.push_back({i, steps, sd::auto_augment(images[i], kind, apply)});
    }
  }
  expect_same_as_torchvision(images, cases);
}

// torchvision's tables, read from torchvision itself: for each policy the (op, |magnitude|)
// pairs it can apply to a 37 x 45 image (AutoAugment: its sub-policies, probability > 0).
nlohmann::json torchvision_tables() {
  st::TempDir dir;
  const std::string script =
      "import json, sys, torch\n"
      "from torchvision.transforms import v2\n"
      "h, w = 37, 45\n"
      "def allowed(space, name, bins, index):\n"
      "    fn, signed = space[name]\n"
      "    m = fn(bins, h, w)\n"
      "    return [0.0] if m is None else sorted({float(m[i]) for i in index})\n"
      "ra, ta, aa = v2.RandAugment(), v2.TrivialAugmentWide(), v2.AutoAugment()\n"
      "out = {\n"
      "  'randaugment': {n: allowed(ra._AUGMENTATION_SPACE, n, 31, [9]) for n in ra._AUGMENTATION_SPACE},\n"
      "  'trivialaugment': {n: allowed(ta._AUGMENTATION_SPACE, n, 31, range(31)) for n in ta._AUGMENTATION_SPACE},\n"
      "  'signed': sorted({n for s in (ra, ta, aa) for n, (f, sg) in s._AUGMENTATION_SPACE.items() if sg}),\n"
      "  'autoaugment': [[[n, p, allowed(aa._AUGMENTATION_SPACE, n, 10, [0 if i is None else i])[0]]\n"
      "                   for n, p, i in sub if p > 0] for sub in aa._policies],\n"
      "}\n"
      "json.dump(out, open(sys.argv[1], 'w'))\n";
  st::write_file(dir.file("tables.py"), script);
  std::string output;
  if (st::run_command(std::string(st::python()) + " " + dir.file("tables.py") + " " + dir.file("t.json"), &output)) {
    ADD_FAILURE() << output;
    return nlohmann::json();
  }
  return nlohmann::json::parse(st::read_file(dir.file("t.json")));
}

// Draws many times from each policy and checks every step against torchvision's table, and
// that the draws cover the whole table (each op, both signs, every TrivialAugment bin).
TEST(AutoAugment, PoliciesDrawOnlyFromTorchvisionsTables) {
  if (!st::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  auto tables = torchvision_tables();
  ASSERT_TRUE(tables.is_object());
  std::set<std::string> signed_ops = tables["signed"].get<std::set<std::string>>();
  for (const char* name : {"randaugment", "trivialaugment"}) {
    SCOPED_TRACE(name);
    const auto kind = sd::parse_auto_augment(name);
    const auto table = tables[name].get<std::map<std::string, std::vector<double>>>();
    std::map<std::string, std::set<double>> seen;
    std::set<std::string> negative;
    std::mt19937_64 rng(21);
    for (int draw = 0; draw < 4000; ++draw) {
      auto steps = sd::sample_auto_augment(kind, 37, 45, rng);
      ASSERT_EQ(steps.size(), kind == AutoAugmentKind::kRandAugment ? 2u : 1u);
      for (const auto& step : steps) {
        const std::string op = sd::to_string(step.op);
        ASSERT_TRUE(table.count(op)) << op << " is not in torchvision's table";
        const auto& allowed = table.at(op);
        ASSERT_TRUE(std::count(allowed.begin(), allowed.end(), std::abs(step.magnitude)))
            << op << " " << step.magnitude;
        if (step.magnitude < 0) negative.insert(op);
        seen[op].insert(std::abs(step.magnitude));
      }
    }
    ASSERT_EQ(seen.size(), table.size()) << "every op of the table is drawn";
    for (const auto& [op, magnitudes] : seen) EXPECT_EQ(magnitudes.size(), table.at(op).size()) << op;
    for (const auto& op : negative) EXPECT_TRUE(signed_ops.count(op)) << op << " is unsigned in torchvision";
    for (const auto& [op, allowed] : table) {
      if (signed_ops.count(op)) EXPECT_TRUE(negative.count(op)) << op << " is drawn with both signs";
    }
  }
}

TEST(AutoAugment, AutoAugmentDrawsImageNetSubPolicies) {
  if (!st::have_python_torch()) GTEST_SKIP() << "no Python with torch + torchvision (scripts/setup)";
  auto tables = torchvision_tables();
  ASSERT_TRUE(tables.is_object());
  const auto& policies = tables["autoaugment"];
  std::set<std::string> table_ops, seen_ops;
  for (const auto& sub : policies) {
    for (const auto& step : sub) table_ops.insert(step[0].get<std::string>());
  }
  // A draw must be a sub-sequence of one sub-policy: each step with its bin's magnitude.
  auto fits = [&](const std::vector<sd::AugmentStep>& steps) {
    for (const auto& sub : policies) {
      size_t k = 0;
      for (const auto& step : sub) {
        if (k < steps.size() && step[0].get<std::string>() == sd::to_string(steps[k].op) &&
            step[2].get<double>() == std::abs(steps[k].magnitude)) {
          ++k;
        }
      }
      if (k == steps.size()) return true;
    }
    return false;
  };
  std::mt19937_64 rng(5);
  std::map<size_t, int> step_counts;
  for (int draw = 0; draw < 4000; ++draw) {
    auto steps = sd::sample_auto_augment(AutoAugmentKind::kAutoAugment, 37, 45, rng);
    ASSERT_LE(steps.size(), 2u);
    ++step_counts[steps.size()];
    EXPECT_TRUE(fits(steps)) << "draw " << draw << " is no sub-policy of torchvision's ImageNet policy";
    for (const auto& step : steps) seen_ops.insert(sd::to_string(step.op));
  }
  EXPECT_EQ(seen_ops, table_ops);
  for (size_t n : {0u, 1u, 2u}) EXPECT_GT(step_counts[n], 200) << n << " steps (each step has its own probability)";
}

TEST(AutoAugment, SameSeedSameImageOtherSeedsDiffer) {
  auto image = random_image(3, 37, 45, 7);
  for (AutoAugmentKind kind : kPolicies) {
    SCOPED_TRACE(sd::to_string(kind));
    std::mt19937_64 a(3), b(3);
    auto first = sd::auto_augment(image, kind, a);
    EXPECT_TRUE(torch::equal(first, sd::auto_augment(image, kind, b)));
    EXPECT_EQ(first.sizes(), image.sizes());
    EXPECT_EQ(first.scalar_type(), torch::kUInt8);
    std::vector<torch::Tensor> distinct;
    for (uint64_t seed = 0; seed < 12; ++seed) {
      std::mt19937_64 rng(seed);
      auto out = sd::auto_augment(image, kind, rng);
      bool repeated = false;
      for (const auto& d : distinct) repeated = repeated || torch::equal(d, out);
      if (!repeated) distinct.push_back(out);
    }
    EXPECT_GE(distinct.size(), 6u) << "different seeds give different augmentations";
  }
  std::mt19937_64 rng(3);
  EXPECT_TRUE(torch::equal(sd::auto_augment(image, AutoAugmentKind::kNone, rng), image));
  EXPECT_TRUE(sd::sample_auto_augment(AutoAugmentKind::kNone, 37, 45, rng).empty());
}

TEST(AutoAugment, ParsesPolicyNamesAndRefusesOthers) {
  for (AutoAugmentKind kind : {AutoAugmentKind::kNone, AutoAugmentKind::kRandAugment,
                               AutoAugmentKind::kTrivialAugment, AutoAugmentKind::kAutoAugment}) {
    EXPECT_EQ(sd::parse_auto_augment(sd::to_string(kind)), kind);
  }
  EXPECT_EQ(sd::parse_auto_augment("trivialaugment"), AutoAugmentKind::kTrivialAugment);
  for (const std::string bad : {"RandAugment", "augmix", "", "rand augment"}) {
    auto message = st::expect_error([&] { sd::parse_auto_augment(bad); });
    EXPECT_NE(message.find("'" + bad + "'"), std::string::npos) << message;
    EXPECT_NE(message.find("none, randaugment, trivialaugment or autoaugment"), std::string::npos) << message;
  }
  auto four_channels = torch::zeros({4, 8, 8}, torch::kUInt8);
  auto message = st::expect_error([&] { sd::apply_augment_op(four_channels, AugmentOp::kInvert, 0); });
  EXPECT_NE(message.find("[4, 8, 8]"), std::string::npos) << message;
}

TEST(RandomErasing, RectanglesLieInTheScaleAndRatioRanges) {
  const int64_t height = 300, width = 400;
  const double area = static_cast<double>(height * width);
  const auto options = sd::RandomErasingOptions().probability(1.0);
  std::mt19937_64 rng(17);
  double min_fraction = 1, max_fraction = 0, min_ratio = 100, max_ratio = 0;
  for (int draw = 0; draw < 3000; ++draw) {
    auto rect = sd::sample_random_erasing(height, width, options, rng);
    ASSERT_TRUE(rect.has_value()) << "p = 1 always erases a 400 x 300 image";
    ASSERT_GE(rect->top, 0);
    ASSERT_GE(rect->left, 0);
    ASSERT_LT(rect->height, height);
    ASSERT_LT(rect->width, width);
    ASSERT_LE(rect->top + rect->height, height);
    ASSERT_LE(rect->left + rect->width, width);
    // h and w are rounded from sqrt(area * ratio) and sqrt(area / ratio): the unrounded area
    // and ratio lie within half a pixel of each side.
    const double h = static_cast<double>(rect->height), w = static_cast<double>(rect->width);
    EXPECT_GE((h + 0.5) * (w + 0.5), 0.02 * area);
    EXPECT_LE((h - 0.5) * (w - 0.5), 0.33 * area);
    EXPECT_GE((h + 0.5) / (w - 0.5), 0.3);
    EXPECT_LE((h - 0.5) / (w + 0.5), 3.3);
    min_fraction = std::min(min_fraction, h * w / area);
    max_fraction = std::max(max_fraction, h * w / area);
    min_ratio = std::min(min_ratio, h / w);
    max_ratio = std::max(max_ratio, h / w);
  }
  // The whole range is used, not a corner of it.
  EXPECT_LT(min_fraction, 0.025);
  EXPECT_GT(max_fraction, 0.3);
  EXPECT_LT(min_ratio, 0.35);
  EXPECT_GT(max_ratio, 3.0);
}

TEST(RandomErasing, ProbabilityAndInPlaceFill) {
  std::mt19937_64 rng(8);
  auto never = sd::RandomErasingOptions().probability(0.0);
  auto always = sd::RandomErasingOptions().probability(1.0);
  auto half = sd::RandomErasingOptions().probability(0.5);
  int erased = 0;
  for (int draw = 0; draw < 1000; ++draw) {
    EXPECT_FALSE(sd::sample_random_erasing(64, 64, never, rng).has_value());
    EXPECT_TRUE(sd::sample_random_erasing(64, 64, always, rng).has_value());
    erased += sd::sample_random_erasing(64, 64, half, rng).has_value() ? 1 : 0;
  }
  EXPECT_GT(erased, 420);
  EXPECT_LT(erased, 580);

  // In place on a slot of a channels-last batch: exactly the rectangle takes the value.
  auto batch = torch::rand({2, 3, 40, 50}).contiguous(torch::MemoryFormat::ChannelsLast);
  auto before = batch.clone();
  auto rect = sd::random_erase_(batch.select(0, 1), always.value(-1.5), rng);
  ASSERT_TRUE(rect.has_value());
  auto mask = torch::zeros({40, 50}, torch::kBool);
  mask.slice(0, rect->top, rect->top + rect->height).slice(1, rect->left, rect->left + rect->width).fill_(true);
  EXPECT_TRUE(torch::equal(batch[0], before[0]));
  EXPECT_TRUE(batch[1].masked_select(mask.expand({3, 40, 50})).eq(-1.5).all().item<bool>());
  EXPECT_TRUE(torch::equal(batch[1].masked_select(~mask.expand({3, 40, 50})),
                           before[1].masked_select(~mask.expand({3, 40, 50}))));
  EXPECT_THROW(sd::sample_random_erasing(64, 64, sd::RandomErasingOptions().probability(1.5), rng), c10::Error);
}

namespace {

std::vector<sd::Batch> epoch_batches(sd::BatchStream& stream, int64_t epoch) {
  stream.reset(epoch);
  std::vector<sd::Batch> batches;
  while (auto batch = stream.next()) batches.push_back(*batch);
  return batches;
}

void make_folder(const fs::path& root) {
  for (int c = 0; c < 2; ++c) {
    for (int i = 0; i < 6; ++i) {
      auto path = root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png");
      fs::create_directories(path.parent_path());
      auto picture = st::test_picture(3, 40, 48 + 8 * i, static_cast<uint64_t>(c * 10 + i));
      st::write_file(path.string(), st::encode_png(picture));
    }
  }
}

sd::LoaderOptions loader_options(int64_t workers, bool augment) {
  return sd::LoaderOptions().batch_size(4).workers(workers).seed(3).shuffle(augment).drop_last(augment).augment(
      augment);
}

bool same_batches(const std::vector<sd::Batch>& a, const std::vector<sd::Batch>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i].indices, b[i].indices) || !torch::equal(a[i].images, b[i].images)) return false;
  }
  return true;
}

}  // namespace

TEST(ImageFolderAugment, AutoAugmentAndErasingAreDeterministicForAnyWorkerCount) {
  st::TempDir dir;
  make_folder(dir.path());
  auto index = sd::list_image_folder(dir.path().string());
  auto plain = sd::ImageFolderOptions().image_size(32);
  for (AutoAugmentKind kind : kPolicies) {
    SCOPED_TRACE(sd::to_string(kind));
    auto options = sd::ImageFolderOptions(plain).auto_augment(kind).random_erase(0.5);
    sd::ImageFolderLoader inline_loader(index, options, loader_options(0, true));
    sd::ImageFolderLoader threaded(index, options, loader_options(2, true));
    for (int64_t epoch : {0, 1}) {
      auto reference = epoch_batches(inline_loader, epoch);
      ASSERT_EQ(reference.size(), 3u);
      EXPECT_TRUE(same_batches(reference, epoch_batches(threaded, epoch))) << "epoch " << epoch;
      sd::ImageFolderLoader without(index, plain, loader_options(0, true));
      auto other = epoch_batches(without, epoch);
      ASSERT_EQ(other.size(), reference.size());
      int64_t changed = 0;
      for (size_t b = 0; b < other.size(); ++b) {
        EXPECT_TRUE(torch::equal(other[b].indices, reference[b].indices)) << "same shuffle";
        for (int64_t i = 0; i < other[b].images.size(0); ++i) {
          changed += torch::equal(other[b].images[i], reference[b].images[i]) ? 0 : 1;
        }
      }
      EXPECT_GE(changed, 6) << "most of the 12 samples are augmented";
    }
  }
}

TEST(ImageFolderAugment, EvaluationNeverAugments) {
  st::TempDir dir;
  make_folder(dir.path());
  auto index = sd::list_image_folder(dir.path().string());
  auto plain = sd::ImageFolderOptions().image_size(32);
  auto augmented = sd::ImageFolderOptions(plain).auto_augment(AutoAugmentKind::kAutoAugment).random_erase(1.0);
  sd::ImageFolderLoader a(index, plain, loader_options(0, false));
  sd::ImageFolderLoader b(index, augmented, loader_options(1, false));
  EXPECT_TRUE(same_batches(epoch_batches(a, 0), epoch_batches(b, 0)));
  auto message = st::expect_error([&] { sd::ImageFolderLoader(index, sd::ImageFolderOptions(plain).random_erase(1.5),
                                                              loader_options(0, true)); });
  EXPECT_NE(message.find("1.5"), std::string::npos) << message;
}

TEST(ImageFolderAugment, DataOptionsReachTheTrainingStreamOnly) {
  st::TempDir dir;
  make_folder(dir.path() / "train");
  make_folder(dir.path() / "val");
  auto options = sd::DataOptions().small_image_side(0).image_size(32).batch_size(4).eval_batch_size(4).workers(0).seed(4);
  auto plain = sd::open_image_folder_data(dir.file("train"), dir.file("val"), options);
  auto augmented = sd::open_image_folder_data(
      dir.file("train"), dir.file("val"),
      sd::DataOptions(options).auto_augment(AutoAugmentKind::kTrivialAugment).random_erase(1.0));
  auto train = epoch_batches(*augmented.train, 0);
  EXPECT_FALSE(same_batches(epoch_batches(*plain.train, 0), train));
  EXPECT_TRUE(same_batches(epoch_batches(*plain.val, 0), epoch_batches(*augmented.val, 0)));
  // Erasing comes after normalisation (torchvision's order): every image has a rectangle of
  // at least 2% of its 32 x 32 pixels at exactly 0 (the mean colour) in every channel.
  for (const auto& batch : train) {
    auto zero_pixels = batch.images.eq(0).all(1).sum({1, 2});
    EXPECT_GE(zero_pixels.min().item<int64_t>(), 16) << zero_pixels;
  }
}
