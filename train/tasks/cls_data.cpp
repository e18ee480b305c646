// Stage-1 data plumbing; see cls_data.h.
#include "train/tasks/cls_data.h"

#include <filesystem>
#include <functional>

#include "models/densenet.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"

namespace sx::train {

LoaderClsSource::LoaderClsSource(const io::Dataset& ds, std::vector<int64_t> pool, io::LoaderOptions opt)
    : ds_(ds), pool_(std::move(pool)), opt_(std::move(opt)), loader_(std::make_unique<io::DataLoader>(ds_, pool_, opt_)) {}

void LoaderClsSource::shard(int rank, int count) {
  opt_.shard_rank = rank;
  opt_.shard_count = count;
  opt_.shard_wrap = false;
  loader_ = std::make_unique<io::DataLoader>(ds_, pool_, opt_);
}

void LoaderClsSource::start_epoch(int64_t epoch, int64_t first_batch) {
  loader_->start_epoch(epoch);
  for (int64_t k = 0; k < first_batch; ++k)
    if (!loader_->next(raw_)) break;
}

bool LoaderClsSource::next(ClsBatch& b) {
  if (!loader_->next(raw_)) return false;
  b.images = raw_.images;
  b.labels = raw_.image_labels;
  b.ids.clear();
  for (const auto& t : raw_.targets) b.ids.push_back(t.image_id);
  return true;
}

ClsData open_cls_data(const ClsDataOptions& opt, bool split_validation) {
  io::DatasetOptions dopt;
  dopt.split = opt.split;
  dopt.skip_bad_rows = opt.skip_bad_rows;
  dopt.allow_missing = true;  // checked next, with the list written
  ClsData d;
  d.dataset = std::make_unique<io::Dataset>(io::Dataset::open(opt.root, dopt));
  if (!d.dataset->missing().empty() && !opt.missing_list.empty())
    std::filesystem::create_directories(std::filesystem::path(opt.missing_list).parent_path());
  d.missing_note = io::check_missing_images(*d.dataset, opt.missing_list, opt.allow_missing);
  SX_CHECK(d.dataset->size() > 0, "no images in the ", opt.split, " split of ", opt.root);
  if (split_validation) {
    SX_CHECK(opt.val_fraction > 0 && opt.val_fraction < 1, "--val-fraction must be in (0, 1), got ", opt.val_fraction);
    d.split = io::split_by_study(*d.dataset, opt.val_fraction, opt.seed);
    SX_CHECK(!d.split.train.empty() && !d.split.val.empty(), "splitting ", d.dataset->size(),
             " images by study left an empty side (train ", d.split.train.size(), ", val ", d.split.val.size(), ")");
  } else {
    for (int64_t i = 0; i < d.dataset->size(); ++i) d.split.train.push_back(i);
  }
  return d;
}

io::LoaderOptions cls_loader_options(const ClsDataOptions& opt, bool training) {
  io::LoaderOptions lo;
  lo.batch_size = opt.batch;
  lo.workers = opt.workers;
  lo.seed = opt.seed;
  lo.drop_last = false;
  lo.transform.size = opt.size;
  lo.transform.channels = opt.channels;
  lo.transform.pad_square = true;
  lo.transform.pad_multiple = 32;
  if (training) {
    if (opt.sampling == "shuffle") lo.sampling = io::SamplingMode::Shuffle;
    else if (opt.sampling == "balanced") lo.sampling = io::SamplingMode::ClassBalanced;
    else SX_THROW(ValueError, "--sampling must be shuffle or balanced, got '", opt.sampling, "'");
    lo.augment = true;
    lo.transform.hflip_prob = opt.hflip;
  } else {
    lo.sampling = io::SamplingMode::Sequential;
    lo.augment = false;
  }
  return lo;
}

const char* const kClsArchChoices =
    "resnet18 | resnet34 | resnet50 | resnet101 | densenet121 | densenet169 | densenet201";

void check_cls_arch(const std::string& arch) {
  static const char* const known[] = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "18", "34", "50",
                                      "101", "152", "densenet121", "densenet169", "densenet201"};
  for (const char* k : known)
    if (arch == k) return;
  SX_THROW(ValueError, "unknown classifier architecture '", arch, "' (", kClsArchChoices, ")");
}

std::shared_ptr<nn::Module> make_cls_model(const std::string& arch, int channels, uint64_t seed) {
  SX_CHECK(channels == 1 || channels == 3, "--channels must be 1 or 3, got ", channels);
  check_cls_arch(arch);
  if (models::is_densenet_arch(arch)) {
    models::DenseNetConfig c;
    c.in_channels = channels;
    c.num_classes = 1;
    c.seed = seed;
    return models::make_densenet(arch, c);
  }
  models::ResNetConfig c;
  c.in_channels = channels;
  c.num_classes = 1;
  c.seed = seed;
  return models::make_resnet(arch, c);
}

nn::LoadReport load_pretrained_backbone(const std::string& path, nn::Module& model) {
  std::function<nn::StateDict(const nn::StateDict&)> adapt;
  std::string what;
  if (auto* r = dynamic_cast<models::ResNet*>(&model)) {
    const int64_t ch = r->config().in_channels;
    adapt = [ch](const nn::StateDict& sd) { return models::adapt_resnet_state_dict(sd, ch, /*drop_fc=*/true); };
    what = std::to_string(r->config().depth) + "-layer ResNet";
  } else if (auto* d = dynamic_cast<models::DenseNet*>(&model)) {
    const int64_t ch = d->config().in_channels;
    adapt = [ch](const nn::StateDict& sd) { return models::adapt_densenet_state_dict(sd, ch, /*drop_classifier=*/true); };
    what = "DenseNet with blocks of";
    for (int64_t n : d->config().block_config) what += " " + std::to_string(n);
    what += " layers";
  } else {
    SX_THROW(ValueError, "load_pretrained_backbone: the model is neither a ResNet nor a DenseNet");
  }
  nn::LoadReport rep = load_model_weights(path, model, /*strict=*/false, adapt);
  bool ok = rep.unexpected.empty() && rep.mismatched.empty();
  for (const auto& k : rep.missing)
    ok = ok && (k == "fc.weight" || k == "fc.bias" || k == "classifier.weight" || k == "classifier.bias");
  SX_CHECK(ok, path, ": the weights do not fit a ", what, ":\n", rep.str());
  return rep;
}

}  // namespace sx::train
