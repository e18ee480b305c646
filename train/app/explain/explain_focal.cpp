// `explain focal`: why RetinaNet trains with the focal loss. One real batch (the chosen image and
// the images after it in the split, loaded as training loads them but without augmentation) goes
// through the RetinaNet heads; its anchors are matched exactly as RetinaNet::compute_loss matches
// them, and the classification loss of every anchor (summed over classes, kernels/focal_loss with
// reduction None) is split by the anchor's kind:
//   positive       matched to a ground-truth box (IoU >= 0.5 or a low-quality match)
//   hard negative  background, but some class has probability >= hard_p (a false alarm)
//   easy negative  background and every class probability < hard_p
//   (ignored anchors, between the thresholds, contribute nothing)
// for gamma 0 (cross-entropy with the library's alpha weighting), 1, 2 and 5, each normalised as the
// model does (per image by max(1, #positives), averaged over the batch). The kinds add up to the
// total from kernels::sigmoid_focal_loss_forward with reduction Sum (checked), and at the model's
// gamma that total is RetinaNet's "classification" loss.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/box_ops/box_ops.h"
#include "kernels/focal_loss/focal_loss.h"
#include "models/anchors.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain_common.h"
#include "train/tasks/det_train.h"

namespace sx::train::explain {
namespace {

enum Kind { kEasy = 0, kHard = 1, kPositive = 2, kIgnored = 3 };
const char* const kKindNames[3] = {"easy negatives", "hard negatives", "positives"};

// Loss of a positive element against its probability p_t under gamma, alpha off (Lin et al.'s
// Figure 1), from the library's kernel: one logit per p_t, target class 0 of C = 1.
std::vector<double> loss_curve(const std::vector<double>& pt, double gamma) {
  std::vector<double> logits;
  for (double p : pt) logits.push_back(std::log(p / (1 - p)));
  const int64_t n = static_cast<int64_t>(pt.size());
  kernels::FocalLossParams fp;
  fp.alpha = -1;
  fp.gamma = gamma;
  fp.reduction = kernels::FocalReduction::None;
  return kernels::sigmoid_focal_loss_forward(Tensor::from_vector(logits, {n, 1}, DType::Float64),
                                             Tensor::zeros({n}, DType::Int64), fp)
      .to_vector();
}

}  // namespace

ExplainResult explain_focal(const ExplainOptions& o) {
  Scene s = open_scene(o);
  const int64_t K = s.ds.classes().num_classes();
  LoadedModel m = load_model(o, "focal", "retinanet", K);
  auto& rn = dynamic_cast<models::RetinaNet&>(*m.model);
  const int channels = static_cast<int>(rn.options().in_channels);
  load_pixels(s, m.size, channels, m.min_size);
  SX_CHECK(o.batch >= 1, "explain focal: --batch must be >= 1, got ", o.batch);
  std::vector<int64_t> pool;
  for (int64_t i = s.index; i < s.ds.size() && static_cast<int>(pool.size()) < o.batch; ++i) pool.push_back(i);
  io::Batch b = make_plain_batch(s.ds, pool, m.size, channels, m.min_size);
  models::ImageList il = to_image_list(b, Device::cpu());
  std::vector<models::ImageTargets> targets = to_targets(b, Device::cpu());
  NoGradGuard ng;
  auto h = rn.forward_heads(il);
  const double model_cls_loss = rn.compute_loss(h, targets).at("classification").item();
  Tensor anchors = cat(h.anchors, 0);
  const int64_t A = anchors.size(0), B = il.batch();
  const double alpha = rn.config().focal_alpha;
  const std::vector<double> gammas = {0.0, 1.0, 2.0, 5.0};
  const size_t NG = gammas.size();
  std::vector<std::array<double, 3>> split(NG, {0, 0, 0});
  std::vector<double> total(NG, 0.0);
  std::array<int64_t, 4> counts = {0, 0, 0, 0};
  std::array<double, 3> raw_ce = {0, 0, 0};  // un-normalised CE sums (for the per-anchor means)
  for (int64_t i = 0; i < B; ++i) {
    const auto& tg = targets[i];
    std::vector<double> matched(A, static_cast<double>(models::kBelowLowThreshold));
    if (tg.boxes.size(0) > 0)
      matched = models::match_boxes(kernels::box_iou(tg.boxes, anchors), rn.config().fg_iou_thresh,
                                    rn.config().bg_iou_thresh, true)
                    .to_vector();
    const std::vector<double> labels = tg.labels.to_vector();
    Tensor logits = h.cls_logits.select(0, i).contiguous();  // [A, K]
    const std::vector<double> lv = logits.to_vector();
    std::vector<double> tv(A);
    std::vector<int> kind(A);
    int64_t fg = 0;
    for (int64_t a = 0; a < A; ++a) {
      if (matched[a] >= 0) {
        tv[a] = labels[static_cast<size_t>(matched[a])];
        kind[a] = kPositive;
        ++fg;
      } else if (matched[a] == models::kBetweenThresholds) {
        tv[a] = -1;
        kind[a] = kIgnored;
      } else {
        tv[a] = static_cast<double>(K);
        double mx = -INFINITY;
        for (int64_t c = 0; c < K; ++c) mx = std::max(mx, lv[a * K + c]);
        kind[a] = 1.0 / (1.0 + std::exp(-mx)) >= o.hard_p ? kHard : kEasy;
      }
      ++counts[kind[a]];
    }
    Tensor tt = Tensor::from_vector(tv, {A}, DType::Int64);
    const double norm = static_cast<double>(std::max<int64_t>(1, fg));
    for (size_t gi = 0; gi < NG; ++gi) {
      kernels::FocalLossParams fp;
      fp.alpha = alpha;
      fp.gamma = gammas[gi];
      fp.reduction = kernels::FocalReduction::None;
      const std::vector<double> per = kernels::sigmoid_focal_loss_forward(logits, tt, fp).to_vector();
      for (int64_t a = 0; a < A; ++a) {
        if (kind[a] == kIgnored) continue;
        double row = 0;
        for (int64_t c = 0; c < K; ++c) row += per[a * K + c];
        split[gi][kind[a]] += row / norm / static_cast<double>(B);
        if (gi == 0) raw_ce[kind[a]] += row;
      }
      fp.reduction = kernels::FocalReduction::Sum;
      fp.normalizer = norm;
      total[gi] += kernels::sigmoid_focal_loss_forward(logits, tt, fp).item() / static_cast<double>(B);
    }
  }
  ExplainResult r;
  r.json = scene_json("focal", s, m);
  io::Json batch_ids = io::Json::array();
  for (const auto& t : b.targets) batch_ids.push_back(t.image_id);
  r.json["batch"] = batch_ids;
  r.json["alpha"] = alpha;
  r.json["hard_p"] = o.hard_p;
  r.json["anchors"] = {{"per_image", A},
                       {"easy_negatives", counts[kEasy]},
                       {"hard_negatives", counts[kHard]},
                       {"positives", counts[kPositive]},
                       {"ignored", counts[kIgnored]}};
  r.text = "Focal loss on one batch of " + std::to_string(B) + " images (" + s.image_id + " and the next), " + m.note +
           "\n";
  r.text += strf("Anchors: %lld per image; in the batch %lld easy negatives, %lld hard negatives (some class p >= "
                 "%.2f),\n%lld positives, %lld ignored. Losses normalised as RetinaNet does (sum / max(1, "
                 "#positives) per image,\nmean over the batch); alpha %.2f.\n\n",
                 static_cast<long long>(A), static_cast<long long>(counts[kEasy]),
                 static_cast<long long>(counts[kHard]), o.hard_p, static_cast<long long>(counts[kPositive]),
                 static_cast<long long>(counts[kIgnored]), alpha);
  r.text += strf("%-10s %14s %14s %14s %12s   %s\n", "loss", "easy neg", "hard neg", "positives", "total",
                 "shares (easy/hard/pos)");
  io::Json rows = io::Json::array();
  plot::BarChart chart;
  chart.title = "Share of the classification loss by anchor kind";
  chart.ylabel = "% of the total";
  chart.ymax = 110;
  for (int k = 0; k < 3; ++k) chart.series.push_back({kKindNames[k], {}, plot::palette(k)});
  for (size_t gi = 0; gi < NG; ++gi) {
    const double sum = split[gi][0] + split[gi][1] + split[gi][2];
    SX_CHECK(std::fabs(sum - total[gi]) <= 1e-4 * std::max(1e-12, std::fabs(total[gi])) + 1e-12,
             "explain focal: the kinds add up to ", sum, " but the kernel's total is ", total[gi]);
    const std::string name = gammas[gi] == 0 ? "CE (g=0)" : strf("focal g=%g", gammas[gi]);
    chart.groups.push_back(name);
    io::Json row = {{"gamma", gammas[gi]},
                    {"easy_negatives", split[gi][0]},
                    {"hard_negatives", split[gi][1]},
                    {"positives", split[gi][2]},
                    {"sum_of_kinds", sum},
                    {"total_from_kernel", total[gi]}};
    std::string shares;
    for (int k = 0; k < 3; ++k) {
      const double sh = total[gi] > 0 ? 100.0 * split[gi][k] / total[gi] : 0.0;
      chart.series[k].values.push_back(sh);
      shares += strf("%s%.1f%%", k ? " / " : "", sh);
    }
    r.text += strf("%-10s %14.6g %14.6g %14.6g %12.6g   %s\n", name.c_str(), split[gi][0], split[gi][1],
                   split[gi][2], total[gi], shares.c_str());
    rows.push_back(row);
  }
  r.json["losses"] = rows;
  r.json["model_classification_loss"] = model_cls_loss;
  r.json["model_gamma"] = rn.config().focal_gamma;
  const double easy_mean = counts[kEasy] ? raw_ce[kEasy] / counts[kEasy] : 0.0;
  const double pos_mean = counts[kPositive] ? raw_ce[kPositive] / counts[kPositive] : 0.0;
  r.text += strf("\nUnder cross-entropy an easy negative costs %.4g on average and a positive %.4g, but there are\n"
                 "%lld easy negatives for %lld positives, so together they carry %.1f%% of the loss. The focal factor\n"
                 "(1 - p_t)^gamma shrinks well-classified anchors most: at gamma 2 the easy negatives keep %.1f%%.\n",
                 easy_mean, pos_mean, static_cast<long long>(counts[kEasy]),
                 static_cast<long long>(counts[kPositive]), total[0] > 0 ? 100.0 * split[0][0] / total[0] : 0.0,
                 total[2] > 0 ? 100.0 * split[2][0] / total[2] : 0.0);
  r.text += strf("RetinaNet's own classification loss on this batch (gamma %g): %.6g (the table's total at that gamma).\n",
                 rn.config().focal_gamma, model_cls_loss);
  if (m.fresh)
    r.text += "(A fresh model predicts the prior p = 0.01 everywhere, so no negative is hard yet.)\n";

  // The classic curves: loss of a positive against p_t, alpha off.
  plot::LinePlot curves;
  curves.title = "Focal loss vs probability of the true class";
  curves.xlabel = "p_t";
  curves.ylabel = "loss";
  curves.xmin = 0;
  curves.xmax = 1;
  curves.ymin = 0;
  curves.ymax = 5;
  curves.legend_top_left = false;
  std::vector<double> pt;
  for (int k = 1; k < 200; ++k) pt.push_back(k / 200.0);
  io::Json cj = io::Json::object();
  for (size_t gi = 0; gi < NG; ++gi) {
    plot::Series se;
    se.label = gammas[gi] == 0 ? "CE (gamma 0)" : strf("gamma %g", gammas[gi]);
    se.x = pt;
    se.y = loss_curve(pt, gammas[gi]);
    se.color = plot::palette(static_cast<int>(gi));
    cj[se.label] = {{"p_t", {0.1, 0.5, 0.9}}, {"loss", loss_curve({0.1, 0.5, 0.9}, gammas[gi])}};
    curves.series.push_back(se);
  }
  r.json["curves_at"] = cj;
  r.text += "\nPictures: focal.png = each kind's share of the loss per gamma; focal-curves.png = the loss of one\n"
            "element against p_t for gamma 0, 1, 2, 5 (alpha off, as in Lin et al.'s Figure 1).\n";
  write_outputs(r, o, "focal", {{"", plot::render_bars(chart)}, {"curves", plot::render(curves)}});
  return r;
}

}  // namespace sx::train::explain
