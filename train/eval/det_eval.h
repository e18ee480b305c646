// Detection evaluation with the VinDr-SpineXR paper's protocol, plus VOC-style AP@0.5.
//
// The paper evaluates with pycocotools' COCOeval (iouType "bbox") whose IoU thresholds are
// overridden to 0.20, 0.25, ..., 0.50; "AP50" is the value at 0.50; area range "all"; maxDets 100.
// Every test image is evaluated, including the images labelled `No finding`: they have no ground
// truth, so every box predicted on them is a false positive.
//
// COCO protocol, reimplemented here step by step (pycocotools/cocoeval.py):
//   1. Per (image, class): the detections sorted by score (descending, stable) and cut to the best
//      max_dets; ground truth of that class in that image (no crowd boxes, nothing ignored for the
//      "all" area range).
//   2. Greedy matching per IoU threshold t: detections in score order; each takes, among the still
//      unmatched ground-truth boxes, the one with the highest IoU provided IoU >= min(t, 1 - 1e-10)
//      (on equal IoU the later ground-truth box wins, as COCOeval's `if iou < best: continue`).
//      A matched detection is a true positive, the rest false positives.
//   3. Per class: all images' detections concatenated in image order and sorted by score with a
//      stable sort (numpy's mergesort), cumulative TP/FP -> recall = tp / num_gt,
//      precision = tp / (tp + fp + eps); precision made monotone from the right; the 101 recall
//      points 0, 0.01, ..., 1 each read the precision at the first rank reaching that recall
//      (0 if never reached); AP is their mean (train/eval/metrics.h ap_coco101).
//   4. A class with no ground truth in the whole set has no AP (COCO's -1; NaN here, `null` in
//      JSON) and is left out of the mean: mAP = mean over classes with ground truth.
// IoU is the continuous one (no +1 pixel): inter / (area_a + area_b - inter), as COCO's bbox IoU.
//
// VOC-style AP@0.5 (the PASCAL devkit's voc_eval, VOC2010+ "all-point" interpolation): all of a
// class's detections ranked by score (stable); each is matched to the ground-truth box of its image
// with the highest IoU (matched or not); a TP when that IoU > 0.5 (strictly, as voc_eval) and the
// box is still free, otherwise an FP (a duplicate); AP is the area under the monotone precision
// envelope (train/eval/metrics.h ap_all_points). No max_dets cut (the detectors emit at most 100 per
// image anyway). Continuous IoU here too (the old devkit's +1 is a pixel-grid convention).
//
// Empty inputs are normal: no detections at all gives AP 0 for every class with ground truth; an
// evaluation where no class has ground truth has mAP NaN (`null`).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "train/eval/metrics.h"
#include "train/eval/plot.h"

namespace sx::eval {

struct EvalBox {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;
  int label = 0;       // 0 .. num_classes-1
  double score = 1.0;  // detections only
};

// One image: its ground truth (empty for a `No finding` image) and the model's detections, in the
// same coordinate frame.
struct ImageEval {
  std::string image_id;
  std::vector<EvalBox> gt;
  std::vector<EvalBox> dets;
};

struct DetEvalConfig {
  std::vector<double> iou_thresholds = paper_iou_thresholds();
  int64_t max_dets = 100;
  std::vector<std::string> class_names;  // its size is the number of classes
  double voc_iou = 0.5;

  // 0.20, 0.25, ..., 0.50 (as np.linspace(0.2, 0.5, 7)).
  static std::vector<double> paper_iou_thresholds();
};

struct ClassEval {
  std::string name;
  int64_t num_gt = 0;
  int64_t num_dets = 0;            // detections kept after the per-image max_dets cut
  std::vector<double> ap;          // COCO 101-point AP per IoU threshold; NaN when num_gt == 0
  double ap_voc = 0;               // VOC all-point AP at voc_iou; NaN when num_gt == 0
  metrics::RankedPr pr_at_50;      // the ranked PR curve at the threshold nearest 0.5 (COCO matching)
};

struct DetEvalResult {
  std::vector<double> iou_thresholds;
  std::vector<ClassEval> classes;
  std::vector<double> map;  // per IoU threshold: mean over classes with ground truth (NaN if none)
  double map50 = 0;         // the entry at the threshold nearest 0.5 (the paper's mAP@0.5)
  double map_voc50 = 0;     // mean VOC AP@0.5 over classes with ground truth
  int64_t num_images = 0, num_normal_images = 0, num_gt = 0, num_dets = 0;
  int threshold_index_50 = 0;  // index into iou_thresholds of the 0.5 entry
};

// Evaluates; throws ValueError on a label outside 0 .. num_classes-1, a non-finite coordinate or
// score, duplicate image ids, or an empty class_names / iou_thresholds.
DetEvalResult evaluate_detections(const std::vector<ImageEval>& images, const DetEvalConfig& config);

// IoU of two boxes as used by the evaluation (continuous, 0 when the union is not positive).
double eval_iou(const EvalBox& a, const EvalBox& b);

// The result as a JSON object:
// {"protocol": ..., "iou_thresholds": [...], "map": {"0.2": ..}, "map50": .., "map_voc50": ..,
//  "classes": [{"name": .., "num_gt": .., "num_dets": .., "ap": {"0.2": ..}, "ap50": .., "ap_voc50": ..}],
//  "num_images": .., "num_normal_images": .., "num_gt": .., "num_dets": ..}
io::Json det_eval_json(const DetEvalResult& r);

// A plain-text table: one row per class (AP at each threshold and VOC AP@0.5), then the means.
std::string det_eval_table(const DetEvalResult& r);

// One series per class with ground truth: the interpolated precision envelope at IoU 0.5 as a step
// function of recall (metrics::precision_envelope_steps), labelled with the class's AP50.
std::vector<plot::Series> pr_plot_series(const DetEvalResult& r);
// Writes PR curves at IoU 0.5 (one PNG with every class with ground truth, named `png_path`).
void write_pr_curves_png(const DetEvalResult& r, const std::string& png_path, const std::string& title);

}  // namespace sx::eval
