// DenseNet (torchvision.models.densenet), built from layers/ with torchvision's registration order
// so that state-dict names and order match; the dense blocks share one output buffer (densenet.h).
#include "models/densenet.h"

#include <cmath>

#include "kernels/batchnorm/batchnorm.h"
#include "layers/init.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

namespace {

// A second Storage object over the same memory, kept alive with (and never freeing) the owner's:
// the aliasing shared_ptr gives the view its own write-version counter (see dense_prefix).
struct AliasStorage {
  explicit AliasStorage(std::shared_ptr<Storage> o)
      : owner(std::move(o)), alias(owner->data(), owner->nbytes(), owner->device(), nullptr) {}
  std::shared_ptr<Storage> owner;
  Storage alias;
};

Tensor alias_view(const Tensor& view) {
  auto holder = std::make_shared<AliasStorage>(view.storage());
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::shared_ptr<Storage>(holder, &holder->alias);
  impl->shape = view.shape();
  impl->strides = view.strides();
  impl->offset = view.offset();
  impl->dtype = view.dtype();
  return Tensor(std::move(impl));
}

std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  nn::Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_h = o.kernel_w = k;
  o.params = nn::Conv2dParams{stride, stride, pad, pad, 1, 1, 1};
  o.bias = false;
  o.default_init = false;  // drawn by the DenseNet constructor
  return std::make_shared<nn::Conv2d>(o);
}

}  // namespace

Tensor dense_norm_relu(nn::BatchNorm2d& bn, const Tensor& x) {
  const bool need = GradMode::is_enabled() && (x.requires_grad() || bn.weight.requires_grad() || bn.bias.requires_grad());
  if (!bn.is_training() || !need) return relu(bn.forward(x));
  Tensor y;
  {
    NoGradGuard ng;  // BatchNorm2d's own bookkeeping (running statistics, num_batches_tracked)
    y = relu(bn.forward(x));
  }
  const Tensor xd = x.detach(), yd = y.detach(), wd = bn.weight.detach(), bd = bn.bias.detach();
  const double eps = bn.eps();
  return attach_grad(y, "dense_norm_relu", {x, bn.weight, bn.bias}, [xd, yd, wd, bd, eps](const Tensor& g) {
    Tensor gn = mul(g, gt(yd, 0.0).to(g.dtype()));  // through the ReLU: where its output is positive
    // the batch statistics again (one pass over x; no running-statistics update)
    kernels::BatchNormTrainResult fr = kernels::batch_norm_train_forward(xd, wd, bd, Tensor(), Tensor(), 0.0, eps);
    auto r = kernels::batch_norm_train_backward(gn, xd, wd, fr.save_mean, fr.save_invstd);
    return std::vector<Tensor>{r.grad_input, r.grad_weight, r.grad_bias};
  });
}

Tensor dense_prefix(const Tensor& buffer, int64_t channels, const std::vector<Tensor>& parts) {
  SX_CHECK(buffer.dim() == 4 && channels >= 1 && channels <= buffer.size(1), "dense_prefix: ", channels,
           " channels of a buffer of shape ", shape_str(buffer.shape()));
  std::vector<int64_t> offsets, sizes;
  int64_t off = 0;
  for (const Tensor& p : parts) {
    SX_CHECK(p.dim() == 4, "dense_prefix: parts must be [N, C, H, W], got ", shape_str(p.shape()));
    offsets.push_back(off);
    sizes.push_back(p.size(1));
    off += p.size(1);
  }
  SX_CHECK(off == channels, "dense_prefix: the parts hold ", off, " channels, expected ", channels);
  Tensor out = alias_view(buffer.narrow(1, 0, channels));
  return attach_grad(out, "dense_prefix", parts, [offsets, sizes](const Tensor& g) {
    std::vector<Tensor> grads;
    for (size_t i = 0; i < offsets.size(); ++i) grads.push_back(g.narrow(1, offsets[i], sizes[i]));
    return grads;
  });
}

DenseLayer::DenseLayer(int64_t in_features, int64_t growth_rate, int64_t bn_size) : Module("DenseLayer") {
  norm1 = register_module("norm1", std::make_shared<nn::BatchNorm2d>(in_features));
  conv1 = register_module("conv1", conv(in_features, bn_size * growth_rate, 1, 1, 0));
  norm2 = register_module("norm2", std::make_shared<nn::BatchNorm2d>(bn_size * growth_rate));
  conv2 = register_module("conv2", conv(bn_size * growth_rate, growth_rate, 3, 1, 1));
}

Tensor DenseLayer::forward(const Tensor& x) {
  Tensor h = conv1->forward(dense_norm_relu(*norm1, x));
  return conv2->forward(relu(norm2->forward(h)));
}

DenseBlock::DenseBlock(int64_t layers, int64_t in_features, int64_t growth_rate, int64_t bn_size)
    : Module("DenseBlock"), in_(in_features), k_(growth_rate) {
  for (int64_t i = 0; i < layers; ++i)
    layers_.push_back(register_module("denselayer" + std::to_string(i + 1),
                                      std::make_shared<DenseLayer>(in_features + i * growth_rate, growth_rate, bn_size)));
}

Tensor DenseBlock::forward(const Tensor& x) {
  SX_CHECK(x.dim() == 4 && x.size(1) == in_, "DenseBlock: input must be [N, ", in_, ", H, W], got ",
           shape_str(x.shape()));
  // The block's whole output, filled slice by slice; each layer reads the prefix written so far.
  Tensor buf = Tensor::empty({x.size(0), out_features(), x.size(2), x.size(3)}, x.dtype(), x.device());
  {
    NoGradGuard ng;
    buf.narrow(1, 0, in_).copy_(x.detach());
  }
  std::vector<Tensor> parts{x};
  int64_t c = in_;
  for (auto& layer : layers_) {
    Tensor y = layer->forward(dense_prefix(buf, c, parts));
    {
      NoGradGuard ng;
      buf.narrow(1, c, k_).copy_(y.detach());
    }
    parts.push_back(y);
    c += k_;
  }
  return dense_prefix(buf, c, parts);
}

Transition::Transition(int64_t in_features, int64_t out_features) : Module("Transition") {
  norm = register_module("norm", std::make_shared<nn::BatchNorm2d>(in_features));
  conv = register_module("conv", models::conv(in_features, out_features, 1, 1, 0));
}

Tensor Transition::forward(const Tensor& x) {
  Tensor h = conv->forward(relu(norm->forward(x)));
  // AvgPool2d(2, 2) floors odd sizes (drops the last row/column): crop to even, then 2x2 means.
  const int64_t oh = h.size(2) / 2, ow = h.size(3) / 2;
  SX_CHECK(oh >= 1 && ow >= 1, "DenseNet: the feature map ", shape_str(h.shape()), " is too small to pool");
  if (h.size(2) != 2 * oh) h = h.narrow(2, 0, 2 * oh);
  if (h.size(3) != 2 * ow) h = h.narrow(3, 0, 2 * ow);
  return nn::adaptive_avg_pool2d(h, oh, ow);
}

DenseNet::DenseNet(const DenseNetConfig& config) : Module("DenseNet"), cfg_(config) {
  SX_CHECK(!cfg_.block_config.empty(), "DenseNet: block_config is empty");
  SX_CHECK(cfg_.in_channels >= 1, "DenseNet: in_channels must be >= 1, got ", cfg_.in_channels);
  SX_CHECK(cfg_.num_classes >= 1, "DenseNet: num_classes must be >= 1, got ", cfg_.num_classes);
  SX_CHECK(cfg_.growth_rate >= 1 && cfg_.bn_size >= 1 && cfg_.num_init_features >= 1,
           "DenseNet: growth_rate, bn_size and num_init_features must be >= 1");
  features = register_module("features", std::make_shared<nn::Module>("Features"));
  conv0_ = features->register_module("conv0", conv(cfg_.in_channels, cfg_.num_init_features, 7, 2, 3));
  norm0_ = features->register_module("norm0", std::make_shared<nn::BatchNorm2d>(cfg_.num_init_features));
  pool0_ = features->register_module("pool0", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  int64_t c = cfg_.num_init_features;
  for (size_t b = 0; b < cfg_.block_config.size(); ++b) {
    const std::string n = std::to_string(b + 1);
    auto block = std::make_shared<DenseBlock>(cfg_.block_config[b], c, cfg_.growth_rate, cfg_.bn_size);
    blocks_.push_back(features->register_module("denseblock" + n, block));
    c = block->out_features();
    if (b + 1 < cfg_.block_config.size()) {
      transitions_.push_back(features->register_module("transition" + n, std::make_shared<Transition>(c, c / 2)));
      c /= 2;
    }
  }
  norm5_ = features->register_module("norm5", std::make_shared<nn::BatchNorm2d>(c));
  final_channels_ = c;
  classifier = register_module("classifier", std::make_shared<nn::Linear>(c, cfg_.num_classes));

  // torchvision: kaiming_normal_ (fan_in, relu) for convs, norm 1/0 (already so), Linear bias 0.
  Generator gen(cfg_.seed);
  NoGradGuard ng;
  for (auto& [name, m] : named_modules()) {
    if (auto* cv = dynamic_cast<nn::Conv2d*>(m)) {
      const Shape& s = cv->weight.shape();
      const double fan_in = static_cast<double>(s[1] * s[2] * s[3]);
      cv->weight.copy_(nn::init::normal(s, std::sqrt(2.0 / fan_in), gen));
    } else if (auto* lin = dynamic_cast<nn::Linear*>(m)) {
      lin->reset_parameters(gen);
      lin->bias.zero_();
    }
  }
}

Tensor DenseNet::forward_pooled(const Tensor& x) {
  SX_CHECK(x.dim() == 4 && x.size(1) == cfg_.in_channels, "DenseNet: input must be [N, ", cfg_.in_channels,
           ", H, W], got ", shape_str(x.shape()));
  Tensor h = pool0_->forward(relu(norm0_->forward(conv0_->forward(x))));
  for (size_t b = 0; b < blocks_.size(); ++b) {
    h = blocks_[b]->forward(h);
    if (b < transitions_.size()) h = transitions_[b]->forward(h);
  }
  h = relu(norm5_->forward(h));
  return nn::adaptive_avg_pool2d(h, 1, 1).flatten(1);
}

Tensor DenseNet::forward(const Tensor& x) { return classifier->forward(forward_pooled(x)); }

namespace {
int densenet_depth(const std::string& arch) {
  if (arch == "densenet121") return 121;
  if (arch == "densenet169") return 169;
  if (arch == "densenet201") return 201;
  return 0;
}
}  // namespace

bool is_densenet_arch(const std::string& arch) { return densenet_depth(arch) != 0; }

std::shared_ptr<DenseNet> make_densenet(const std::string& arch, DenseNetConfig cfg) {
  switch (densenet_depth(arch)) {
    case 121: cfg.block_config = {6, 12, 24, 16}; break;
    case 169: cfg.block_config = {6, 12, 32, 32}; break;
    case 201: cfg.block_config = {6, 12, 48, 32}; break;
    default: SX_THROW(ValueError, "make_densenet: unknown architecture '", arch, "' (densenet121, densenet169, densenet201)");
  }
  return std::make_shared<DenseNet>(cfg);
}

int64_t torchvision_densenet_num_parameters(int depth) {
  switch (depth) {
    case 121: return 7978856;
    case 169: return 14149480;
    case 201: return 20013928;
    default: SX_THROW(ValueError, "torchvision_densenet_num_parameters: unknown depth ", depth);
  }
}

nn::StateDict adapt_densenet_state_dict(const nn::StateDict& sd, int64_t in_channels, bool drop_classifier) {
  nn::StateDict out;
  for (const auto& [name, t] : sd) {
    if (drop_classifier && (name == "classifier.weight" || name == "classifier.bias")) continue;
    if (name == "features.conv0.weight" && in_channels == 1 && t.dim() == 4 && t.size(1) == 3) {
      NoGradGuard ng;  // a grey image replicated into RGB meets the channel-summed kernel
      out.set(name, sum(t, {1}, true));
      continue;
    }
    out.set(name, t);
  }
  return out;
}

}  // namespace sx::models
