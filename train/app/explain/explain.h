// `spinexr explain TOPIC`: how detection works inside, drawn from a real run on one image of a
// dataset (a release, a `prepare` cache or the synthetic set), with a trained detector checkpoint
// or a freshly initialised (seeded) one. Each topic writes OUT/<topic>.png (plus OUT/<topic>-*.png
// where it has several pictures) and OUT/<topic>.json (the numbers behind the picture), and returns
// a short explanation with those numbers for the CLI to print.
//
// Topics (explain_topics() lists them with one line each):
//   anchors    the anchor grid of every FPN level, the cell anchors at one point, the ground truth,
//              and the anchors the matcher makes positive / ignored / negative (counts per level)
//   matching   IoU of every ground-truth box with its best anchor per level; low-quality matches
//   focal      one batch's classification loss split by anchor kind under CE and focal loss
//   heads      the dense head's score heat maps per FPN level (RetinaNet classes; Faster R-CNN
//              objectness)
//   rpn        Faster R-CNN's RPN: objectness heat maps, proposals before and after NMS
//   roi-align  one RoI on its FPN level: bins, sampling points, bilinear weights; RoIPool's bins
//   nms        greedy NMS step by step (contact sheet) and the boxes before / after, per class
//   rule       the decision rule: the image's boxes without and with it, with p_abnormal
//
// Every number comes from the library's own code (models::AnchorGenerator, models::match_boxes,
// kernels::box_iou, kernels::sigmoid_focal_loss_forward, kernels::batched_nms and the NMS IoU test
// of kernels/nms/nms_math.h, the RoIAlign math of kernels/roi_align/roi_align_math.h,
// eval::DecisionRule), and each topic checks its step-by-step view against the library's one-call
// result (e.g. the NMS frames' kept set against kernels::batched_nms) and throws if they differ.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/json.h"
#include "models/detector_options.h"

namespace sx::train::explain {

struct ExplainOptions {
  std::string data;            // dataset root (release, flat or cache layout)
  std::string out;             // output folder (created)
  std::string split = "train";
  std::string image_id;        // empty: the first abnormal image of the split (else the first image)
  std::string ckpt;            // detector checkpoint; empty: a fresh model from `model` + `det`
  std::string cls_ckpt;        // classifier checkpoint (rule); empty: p_abnormal below
  std::string model = "retinanet";  // retinanet | faster_rcnn (fresh model)
  models::DetectorOptions det;      // fresh model's options (num_classes is set from the dataset)
  double ckpt_score_thresh = -1;    // >= 0: replaces a checkpoint's stored post-processing threshold
  int size = 0;                // longest side; 0: the checkpoint's, else 512
  double p_abnormal = 0.5;     // rule without a classifier
  double hard_p = 0.5;         // focal: a negative anchor is hard when some class has p >= this
  int batch = 4;               // focal: images in the batch (the chosen one and those after it)
  int candidates = 40;         // nms: the highest-scoring candidate boxes that enter the picture
  int frames = 12;             // nms: steps drawn in the contact sheet
  uint64_t seed = 0;           // fresh weights and the sample of negatives drawn
};

struct ExplainResult {
  std::string text;                 // the explanation, with the numbers (for stdout)
  io::Json json;                    // what OUT/<topic>.json holds
  std::vector<std::string> pngs;    // the pictures written
  std::string json_path;
};

// (topic, one-line description), in the order of the help text.
const std::vector<std::pair<std::string, std::string>>& explain_topics();

// Runs one topic: writes its PNG(s) and JSON into options.out. Throws ValueError for an unknown
// topic or a model the topic cannot use (e.g. `focal` with a Faster R-CNN checkpoint), IOError for
// unreadable data.
ExplainResult run_explain(const std::string& topic, const ExplainOptions& options);

}  // namespace sx::train::explain
