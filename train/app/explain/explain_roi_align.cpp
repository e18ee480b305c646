// `explain roi-align`: how Faster R-CNN's box head pools one region of interest. The RoI (the
// image's largest ground-truth box, else the RPN's best proposal) goes to its FPN level by
// torchvision's LevelMapper (kernels::fpn_levels over the scales nn::infer_fpn_setup infers), and is
// pooled there into pooled_h x pooled_w bins of sampling_ratio^2 bilinear samples each (the box
// head's settings: 7 x 7, 2, aligned = false). The picture's geometry, sample points and bilinear
// weights come from kernels/roi_align/roi_align_math.h (geometry, sample_y/x, bilinear): the very
// functions the CPU and CUDA kernels run; sum(weight x feature) / count is checked against
// kernels::roi_align_forward for every bin. Beside it, RoIPool's quantised bins (torchvision's
// roi_pool: the box rounded to whole cells, bins floor/ceil-ed to cells, max inside), which the
// project does not otherwise implement: it is only drawn, to show what RoIAlign fixes.
//
// Convention of the picture: feature value (row i, column j) sits at the continuous point (j, i),
// the centre of the drawn cell; the bilinear samples interpolate between those centres.
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "kernels/roi_align/roi_align.h"
#include "kernels/roi_align/roi_align_math.h"
#include "layers/roi_align.h"
#include "models/faster_rcnn.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "train/app/explain/explain_common.h"

namespace sx::train::explain {
namespace {

struct PoolBin {
  int64_t h0, h1, w0, w1;  // cells [h0, h1) x [w0, w1)
  double value;            // max, 0 when empty
};

// torchvision's roi_pool bins of one RoI on an H x W plane (spatial_scale applied).
std::vector<PoolBin> roi_pool_bins(const float* roi, double scale, int64_t ph_n, int64_t pw_n, int64_t H, int64_t W,
                                   const std::vector<float>& plane) {
  const int64_t sw = std::lround(roi[1] * scale), sh = std::lround(roi[2] * scale);
  const int64_t ew = std::lround(roi[3] * scale), eh = std::lround(roi[4] * scale);
  const int64_t rw = std::max<int64_t>(ew - sw + 1, 1), rh = std::max<int64_t>(eh - sh + 1, 1);
  const double bw = static_cast<double>(rw) / pw_n, bh = static_cast<double>(rh) / ph_n;
  std::vector<PoolBin> out;
  for (int64_t ph = 0; ph < ph_n; ++ph)
    for (int64_t pw = 0; pw < pw_n; ++pw) {
      PoolBin b;
      b.h0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(ph * bh)) + sh, 0, H);
      b.h1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((ph + 1) * bh)) + sh, 0, H);
      b.w0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(pw * bw)) + sw, 0, W);
      b.w1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((pw + 1) * bw)) + sw, 0, W);
      b.value = b.h1 <= b.h0 || b.w1 <= b.w0 ? 0.0 : -INFINITY;
      for (int64_t y = b.h0; y < b.h1; ++y)
        for (int64_t x = b.w0; x < b.w1; ++x) b.value = std::max<double>(b.value, plane[y * W + x]);
      out.push_back(b);
    }
  return out;
}

}  // namespace

ExplainResult explain_roi_align(const ExplainOptions& o) {
  Scene s = open_scene(o);
  LoadedModel m = load_model(o, "roi-align", "faster_rcnn", s.ds.classes().num_classes());
  load_pixels(s, m.size, static_cast<int>(m.model->options().in_channels), m.min_size);
  auto& f = dynamic_cast<models::FasterRCNN&>(*m.model);
  models::ImageList il = scene_images(s);
  NoGradGuard ng;
  std::vector<Tensor> feats = f.features(il);
  const auto& rc = f.config().roi;
  std::vector<Tensor> levels(feats.begin(), feats.begin() + rc.roi_levels);
  const nn::FpnSetup setup = nn::infer_fpn_setup(levels, il.image_sizes);
  // The RoI: the largest ground-truth box, else the RPN's best proposal.
  std::vector<float> roi = {0, 0, 0, 0, 0};
  std::string roi_from;
  double best_area = -1;
  for (const auto& g : s.gt)
    if ((g.x2 - g.x1) * (g.y2 - g.y1) > best_area) {
      best_area = (g.x2 - g.x1) * (g.y2 - g.y1);
      roi = {0.f, float(g.x1), float(g.y1), float(g.x2), float(g.y2)};
      roi_from = "the largest ground-truth box (" + s.class_names[g.label] + ")";
    }
  if (best_area < 0) {
    auto out = f.rpn->forward(il, feats, nullptr);
    SX_CHECK(out.proposals.at(0).size(0) > 0, "explain roi-align: no ground truth and no proposal on ", s.image_id);
    std::vector<double> p = out.proposals[0].narrow(0, 0, 1).to_vector();
    roi = {0.f, float(p[0]), float(p[1]), float(p[2]), float(p[3])};
    roi_from = "the RPN's best proposal (the image has no ground truth)";
  }
  Tensor rois = Tensor::from_vector({roi[0], roi[1], roi[2], roi[3], roi[4]}, {1, 5}, DType::Float32);
  const int64_t lvl = static_cast<int64_t>(kernels::fpn_levels(rois, setup.k_min, setup.k_max).item());
  const double scale = setup.scales.at(lvl);
  kernels::RoiAlignParams p;
  p.pooled_h = p.pooled_w = rc.roi_output_size;
  p.sampling_ratio = rc.sampling_ratio;
  p.spatial_scale = scale;
  p.aligned = false;
  const Tensor& F = levels[lvl];
  const int64_t C = F.size(1), H = F.size(2), W = F.size(3), PH = p.pooled_h, PW = p.pooled_w;
  Tensor pooled = kernels::roi_align_forward(F, rois, p);  // [1, C, PH, PW]
  // The channel whose pooled 7 x 7 varies most (the most telling one to draw).
  const std::vector<double> pv = pooled.to_vector();
  int64_t ch = 0;
  double best_var = -1;
  for (int64_t c = 0; c < C; ++c) {
    double mu = 0, var = 0;
    for (int64_t k = 0; k < PH * PW; ++k) mu += pv[c * PH * PW + k];
    mu /= static_cast<double>(PH * PW);
    for (int64_t k = 0; k < PH * PW; ++k) var += (pv[c * PH * PW + k] - mu) * (pv[c * PH * PW + k] - mu);
    if (var > best_var) best_var = var, ch = c;
  }
  const std::vector<float> plane = F.select(0, 0).select(0, ch).contiguous().to_vector_as<float>();
  namespace rm = kernels::roimath;
  const rm::RoiGeom<float> g = rm::geometry<float>(roi.data(), 1, static_cast<float>(scale), PH, PW, p.sampling_ratio, false);
  // Every bin re-computed from the shared math, against the kernel.
  double max_diff = 0;
  std::vector<double> align_out(PH * PW);
  const int64_t hb = PH / 2, wb = PW / 2;  // the bin whose samples are listed
  io::Json samples = io::Json::array();
  for (int64_t ph = 0; ph < PH; ++ph)
    for (int64_t pw = 0; pw < PW; ++pw) {
      double acc = 0;
      for (int iy = 0; iy < g.grid_h; ++iy)
        for (int ix = 0; ix < g.grid_w; ++ix) {
          const float y = rm::sample_y(g, ph, iy), x = rm::sample_x(g, pw, ix);
          const rm::Bilinear<float> b = rm::bilinear<float>(H, W, y, x);
          if (!b.valid) continue;
          const int64_t pp[4] = {b.p1, b.p2, b.p3, b.p4};
          const float ww[4] = {b.w1, b.w2, b.w3, b.w4};
          io::Json nb = io::Json::array();
          for (int q = 0; q < 4; ++q) {
            acc += static_cast<double>(ww[q]) * plane[pp[q]];
            nb.push_back({{"row", pp[q] / W}, {"col", pp[q] % W}, {"weight", ww[q]}, {"feature", plane[pp[q]]}});
          }
          if (ph == hb && pw == wb) samples.push_back({{"y", y}, {"x", x}, {"neighbours", nb}});
        }
      align_out[ph * PW + pw] = acc / g.count;
      max_diff = std::max(max_diff, std::fabs(align_out[ph * PW + pw] - pv[ch * PH * PW + ph * PW + pw]));
    }
  double vmax = 0;
  for (double v : align_out) vmax = std::max(vmax, std::fabs(v));
  SX_CHECK(max_diff <= 1e-5 * std::max(1.0, vmax), "explain roi-align: the weights give a bin ", max_diff,
           " away from kernels::roi_align_forward");
  const std::vector<PoolBin> pool_bins = roi_pool_bins(roi.data(), scale, PH, PW, H, W, plane);

  // ---- pictures ----
  const double fx1 = roi[1] * scale, fy1 = roi[2] * scale, fx2 = roi[3] * scale, fy2 = roi[4] * scale;
  const int64_t cx0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(std::min<double>(fx1, pool_bins.front().w0))) - 1, 0, W - 1);
  const int64_t cy0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(std::min<double>(fy1, pool_bins.front().h0))) - 1, 0, H - 1);
  const int64_t cx1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(std::max<double>(fx2, pool_bins.back().w1))) + 1, cx0, W - 1);
  const int64_t cy1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil(std::max<double>(fy2, pool_bins.back().h1))) + 1, cy0, H - 1);
  const int cw = static_cast<int>(cx1 - cx0 + 1), chh = static_cast<int>(cy1 - cy0 + 1);
  const int cell = std::clamp(480 / std::max(cw, chh), 6, 64);
  float lo = INFINITY, hi = -INFINITY;
  for (int64_t y = cy0; y <= cy1; ++y)
    for (int64_t x = cx0; x <= cx1; ++x) lo = std::min(lo, plane[y * W + x]), hi = std::max(hi, plane[y * W + x]);
  // continuous feature coordinate -> panel pixel (cell centres at integer coordinates)
  auto px = [&](double x) { return static_cast<int>(std::lround((x - cx0 + 0.5) * cell)); };
  auto py = [&](double y) { return static_cast<int>(std::lround((y - cy0 + 0.5) * cell)); };
  auto base = [&]() {
    plot::Canvas cv(cw * cell, chh * cell, plot::kWhite);
    for (int64_t y = cy0; y <= cy1; ++y)
      for (int64_t x = cx0; x <= cx1; ++x) {
        const double t = hi > lo ? (plane[y * W + x] - lo) / (hi - lo) : 0.5;
        const auto v = static_cast<uint8_t>(40 + 180 * t);
        cv.fill_rect(static_cast<int>(x - cx0) * cell, static_cast<int>(y - cy0) * cell,
                     static_cast<int>(x - cx0 + 1) * cell - 1, static_cast<int>(y - cy0 + 1) * cell - 1, {v, v, v});
      }
    return cv;
  };
  const plot::Color kRoi{255, 215, 0}, kBin{0, 190, 255}, kSample{255, 60, 60}, kPool{255, 140, 0};
  plot::Canvas al = base();
  for (int64_t k = 0; k <= PW; ++k) {
    const double x = g.start_w + k * g.bin_w;
    al.line(px(x), py(g.start_h), px(x), py(g.start_h + PH * g.bin_h), kBin, 1);
  }
  for (int64_t k = 0; k <= PH; ++k) {
    const double y = g.start_h + k * g.bin_h;
    al.line(px(g.start_w), py(y), px(g.start_w + PW * g.bin_w), py(y), kBin, 1);
  }
  al.rect(px(fx1), py(fy1), px(fx2), py(fy2), kRoi, 2);
  for (int64_t ph = 0; ph < PH; ++ph)
    for (int64_t pw = 0; pw < PW; ++pw)
      for (int iy = 0; iy < g.grid_h; ++iy)
        for (int ix = 0; ix < g.grid_w; ++ix) {
          const int sx = px(rm::sample_x(g, pw, ix)), sy = py(rm::sample_y(g, ph, iy));
          const bool hl = ph == hb && pw == wb;
          al.fill_rect(sx - 1 - hl, sy - 1 - hl, sx + 1 + hl, sy + 1 + hl, hl ? kSample : plot::kWhite);
        }
  for (const auto& smp : samples)  // the highlighted bin's neighbour cells
    for (const auto& nb : smp["neighbours"]) {
      const int64_t r0 = nb["row"].get<int64_t>(), c0 = nb["col"].get<int64_t>();
      al.rect(px(c0 - 0.5), py(r0 - 0.5), px(c0 + 0.5) - 1, py(r0 + 0.5) - 1, kSample, 1);
    }
  plot::Canvas pl = base();
  for (size_t k = 0; k < pool_bins.size(); ++k) {
    const PoolBin& b = pool_bins[k];
    if (b.h1 <= b.h0 || b.w1 <= b.w0) continue;
    pl.rect(px(b.w0 - 0.5), py(b.h0 - 0.5), px(b.w1 - 0.5) - 1, py(b.h1 - 0.5) - 1, k % 2 ? kPool : kBin, 1);
  }
  pl.rect(px(fx1), py(fy1), px(fx2), py(fy2), kRoi, 2);
  // The two 7 x 7 outputs side by side, one colour scale.
  double olo = INFINITY, ohi = -INFINITY;
  for (size_t k = 0; k < align_out.size(); ++k)
    olo = std::min({olo, align_out[k], pool_bins[k].value}), ohi = std::max({ohi, align_out[k], pool_bins[k].value});
  const int oc = 28;
  plot::Canvas outs(static_cast<int>(PW) * oc * 2 + 24, static_cast<int>(PH) * oc + 16, plot::kWhite);
  outs.text(0, 0, "RoIAlign", plot::kBlack);
  outs.text(static_cast<int>(PW) * oc + 24, 0, "RoIPool", plot::kBlack);
  for (int64_t k = 0; k < PH * PW; ++k) {
    const int x = static_cast<int>(k % PW) * oc, y = 12 + static_cast<int>(k / PW) * oc;
    auto t = [&](double v) { return ohi > olo ? (v - olo) / (ohi - olo) : 0.5; };
    outs.fill_rect(x, y, x + oc - 2, y + oc - 2, plot::heat_color(t(align_out[k])));
    const int x2 = x + static_cast<int>(PW) * oc + 24;
    outs.fill_rect(x2, y, x2 + oc - 2, y + oc - 2, plot::heat_color(t(pool_bins[k].value)));
  }
  plot::Canvas img = scene_canvas(s);
  draw_box(img, roi[1], roi[2], roi[3], roi[4], kRoi, 2, 1.0, "RoI -> " + level_name(std::lround(1.0 / scale)));
  const std::string lname = level_name(std::lround(1.0 / scale));
  ExplainResult r;
  r.json = scene_json("roi-align", s, m);
  r.json["roi"] = {{"from", roi_from}, {"xyxy", {roi[1], roi[2], roi[3], roi[4]}}};
  r.json["level"] = {{"name", lname}, {"index", lvl}, {"spatial_scale", scale}, {"grid", {H, W}}, {"channel", ch}};
  r.json["params"] = {{"pooled", {PH, PW}}, {"sampling_ratio", p.sampling_ratio}, {"aligned", false}};
  r.json["geometry"] = {{"start", {g.start_w, g.start_h}}, {"bin", {g.bin_w, g.bin_h}}, {"grid", {g.grid_h, g.grid_w}}};
  r.json["bin_shown"] = {{"bin", {hb, wb}},
                         {"samples", samples},
                         {"value_from_weights", align_out[hb * PW + wb]},
                         {"value_from_kernel", pv[ch * PH * PW + hb * PW + wb]}};
  r.json["max_abs_diff_vs_kernel"] = max_diff;
  r.json["roi_align_output"] = align_out;
  std::vector<double> pool_out;
  for (const auto& b : pool_bins) pool_out.push_back(b.value);
  r.json["roi_pool_output"] = pool_out;
  r.text = "RoIAlign on " + s.image_id + ", " + m.note + "\n";
  r.text += strf("RoI: %s, (%.1f, %.1f)-(%.1f, %.1f) px, %.0fx%.0f: LevelMapper sends it to %s (scale 1/%ld,\n"
                 "feature map %lldx%lld); channel %lld drawn (the one whose pooled output varies most).\n",
                 roi_from.c_str(), roi[1], roi[2], roi[3], roi[4], roi[3] - roi[1], roi[4] - roi[2], lname.c_str(),
                 std::lround(1.0 / scale), static_cast<long long>(H), static_cast<long long>(W),
                 static_cast<long long>(ch));
  r.text += strf("On the map the RoI starts at (%.3f, %.3f) and each of the %lldx%lld bins is %.3f x %.3f cells; each\n"
                 "bin averages %dx%d bilinear samples (no rounding anywhere).\n",
                 g.start_w, g.start_h, static_cast<long long>(PH), static_cast<long long>(PW), g.bin_w, g.bin_h,
                 g.grid_w, g.grid_h);
  r.text += strf("Bin (%lld, %lld): sample (x, y) -> its four neighbours' weights x features:\n",
                 static_cast<long long>(hb), static_cast<long long>(wb));
  for (const auto& smp : samples) {
    r.text += strf("  (%.3f, %.3f):", smp["x"].get<double>(), smp["y"].get<double>());
    for (const auto& nb : smp["neighbours"])
      r.text += strf(" %.3f x %.4g", nb["weight"].get<double>(), nb["feature"].get<double>());
    r.text += "\n";
  }
  r.text += strf("  mean of the samples = %.6g; kernels::roi_align_forward gives %.6g (largest difference over all\n"
                 "  bins %.3g).\n",
                 align_out[hb * PW + wb], pv[ch * PH * PW + hb * PW + wb], max_diff);
  const PoolBin& cb = pool_bins[hb * PW + wb];
  r.text += strf("RoIPool instead rounds the RoI to whole cells and each bin to cells [%lld, %lld) x [%lld, %lld) here:\n"
                 "its max is %.4g; bins overlap or leave cells out, and the box shifts by up to half a cell.\n",
                 static_cast<long long>(cb.w0), static_cast<long long>(cb.w1), static_cast<long long>(cb.h0),
                 static_cast<long long>(cb.h1), cb.value);
  r.text += "\nPicture: the RoI on the image; RoIAlign (yellow = the RoI, blue = bins, white dots = samples, red =\n"
            "the listed bin's samples and their neighbour cells); RoIPool's quantised bins; the two 7x7 outputs.\n";
  write_outputs(r, o, "roi-align",
                {{"", plot::tile({plot::captioned(img, "the RoI"), plot::captioned(al, "RoIAlign: bins and samples"),
                                  plot::captioned(pl, "RoIPool: quantised bins"),
                                  plot::captioned(outs, "outputs (one colour scale)")},
                                 2)}});
  return r;
}

}  // namespace sx::train::explain
