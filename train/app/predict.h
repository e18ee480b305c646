// The two-stage pipeline of the paper, end to end: the stage-1 classifier gives each radiograph
// its abnormal probability, the stage-2 detector its boxes, and the decision rule
// (train/eval/decision_rule.h) joins them. Used by `spinexr predict` and `spinexr eval`.
//
// Output formats (`predict`):
//   predictions.csv   the release's annotation layout plus a score column:
//                     study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax,score
//                     one row per kept box, in original pixel coordinates; an image with no kept
//                     box gets one `No finding` row with empty coordinates whose score is the
//                     classifier's normal probability 1 - p_abnormal. rad_id is empty (a model).
//                     So the file reads back with io::read_annotations (the extra column is
//                     ignored) exactly like the release's CSVs.
//   results.json      COCO-style detection results: [{"image_id": "...", "category_id": k + 1,
//                     "category_name": "...", "bbox": [x, y, w, h], "score": s}, ...] (image ids
//                     are the dataset's strings; category ids 1..7 in the paper's class order).
//   <image_id>.png    the radiograph with class-coloured, labelled boxes (longest side at most
//                     `max_png_side` px).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "models/detection_model.h"
#include "tensor/device.h"
#include "train/eval/decision_rule.h"
#include "train/eval/det_eval.h"
#include "train/tasks/cls_train.h"

namespace sx::train {

struct PipelineConfig {
  // cls_ckpt: one classifier checkpoint, or several separated by commas ("a,b,c"): an ensemble
  // (ensemble_cls_predictions: the mean of the members' logits, then the sigmoid).
  std::string cls_ckpt, det_ckpt;
  // Classifier input; empty/0 = from the checkpoint's metadata (config.arch, config.size, config.channels).
  std::string cls_arch;
  int cls_size = 0, cls_channels = 0;
  // Detector input size (longest side); 0 = from the checkpoint's metadata (config.size).
  int det_size = 0;
  int batch = 8;
  int workers = 2;
  Device device = Device::cpu();
  bool progress = true;
};

// One image after both stages.
struct PipelineImage {
  std::string image_id, study_id, series_id;
  int64_t index = -1;            // dataset index
  int orig_width = 0, orig_height = 0;
  int label = -1;                // ground-truth image label (1 abnormal, 0 normal), -1 when unknown
  double p_abnormal = 0;         // stage 1
  std::vector<eval::EvalBox> gt;    // ground truth (original pixels), empty when unknown or normal
  std::vector<eval::EvalBox> dets;  // stage 2, every box (score-descending)
  std::vector<eval::EvalBox> kept;  // after the decision rule
};

// Rebuilds a detector from a checkpoint's metadata (det.model and the detector options, stored as
// given or under the checkpoint writer's "config." prefix), loads its weights strictly, moves it to
// `device`, eval mode. `overrides` replace metadata entries before the model is built (e.g.
// {"det.score_thresh", "0"} to see the boxes below the stored post-processing threshold).
std::shared_ptr<models::DetectionModel> load_detector_checkpoint(
    const std::string& ckpt, Device device, const std::map<std::string, std::string>& overrides = {});
// The input size (longest side) a detector/classifier checkpoint was trained at (config.size).
int checkpoint_input_size(const std::string& ckpt);
// The shortest side a detector checkpoint was trained at (config.min_size; 0 when it resized the
// longest side: checkpoints without the key).
int checkpoint_min_size(const std::string& ckpt);

// The checkpoints of a comma-separated list ("a.safetensors,b.safetensors"), in order. Throws
// ValueError for an empty list or entry, IOError naming the first one that does not exist.
std::vector<std::string> parse_cls_checkpoints(const std::string& list);

// Stage 1 alone: the classifier checkpoint(s) cfg.cls_ckpt (each one's arch, size, channels from its
// metadata unless cfg gives them; its calibration temperature) over `pool`, in pool order; several
// checkpoints give their ensemble, and each member's own predictions in `members` when not null.
ClsPredictions classify_images(const io::Dataset& ds, const std::vector<int64_t>& pool, const PipelineConfig& cfg,
                               std::vector<ClsPredictions>* members = nullptr);

// Runs both stages over the dataset indices `pool` (in pool order) and applies `rule`.
// `cls_members`: as for classify_images.
std::vector<PipelineImage> run_pipeline(const io::Dataset& ds, const std::vector<int64_t>& pool,
                                        const PipelineConfig& cfg, const eval::DecisionRule& rule,
                                        std::vector<ClsPredictions>* cls_members = nullptr);

// (Re)applies a rule: fills `kept` from `dets` and p_abnormal.
void apply_decision_rule(std::vector<PipelineImage>& images, const eval::DecisionRule& rule);

// What the decision rule did on images with a known label. Every box on a normal image is a false
// positive, so boxes_normal / normal_images is the false positives per normal image.
struct RuleEffect {
  int64_t normal_images = 0, abnormal_images = 0;
  int64_t normal_flagged = 0, abnormal_flagged = 0;      // images with p_abnormal >= c (every box kept)
  int64_t boxes_normal = 0, boxes_normal_kept = 0;       // detector boxes on normal images: all / after the rule
  int64_t boxes_abnormal = 0, boxes_abnormal_kept = 0;   // the same on abnormal images
  double fp_per_normal() const { return normal_images ? static_cast<double>(boxes_normal) / normal_images : 0.0; }
  double fp_per_normal_kept() const {
    return normal_images ? static_cast<double>(boxes_normal_kept) / normal_images : 0.0;
  }
};
RuleEffect rule_effect(const std::vector<PipelineImage>& images, const eval::DecisionRule& rule);
// {"c": .., "normal_images": .., ..., "fp_per_normal_image": .., "fp_per_normal_image_with_rule": ..}
io::Json rule_effect_json(const RuleEffect& e, const eval::DecisionRule& rule);

// The evaluation's input, with the rule's boxes (kept) or every box (dets).
std::vector<eval::ImageEval> pipeline_evals(const std::vector<PipelineImage>& images, bool with_rule);

// A dataset over DICOM files named on the command line: no annotations (label unknown), image_id
// = the file name without its extension, study_id / series_id = the file's StudyInstanceUID /
// SeriesInstanceUID (empty when the header has none). Reads each header: throws IOError for a
// missing or unreadable file or a repeated image id.
io::Dataset dataset_from_files(const std::vector<std::string>& files, const io::ClassMap& classes);

// ---- formats ------------------------------------------------------------------------------------
std::string predictions_csv(const std::vector<PipelineImage>& images, const std::vector<std::string>& class_names);

struct PredictionRow {
  std::string study_id, series_id, image_id, rad_id, lesion_type;
  bool has_box = false;
  double xmin = 0, ymin = 0, xmax = 0, ymax = 0, score = 0;
};
// Reads predictions.csv back (by header name). Throws IOError "predictions.csv:LINE: reason".
std::vector<PredictionRow> parse_predictions_csv(const std::string& text, const std::string& name = "predictions.csv");

std::string coco_results_json(const std::vector<PipelineImage>& images, const std::vector<std::string>& class_names);

struct CocoResult {
  std::string image_id, category_name;
  int category_id = 0;
  double x = 0, y = 0, w = 0, h = 0, score = 0;
};
// Reads a results JSON back (an array of objects as written above). Throws IOError when malformed.
std::vector<CocoResult> parse_coco_results_json(const std::string& text, const std::string& name = "results.json");

// Draws one image with its kept boxes scoring >= draw_thresh (class colour, "name score" tags) to
// `path`; the header line says how many of the kept boxes were drawn. The CSV/JSON keep them all.
void write_prediction_png(const io::Dataset& ds, const PipelineImage& image,
                          const std::vector<std::string>& class_names, const std::string& path,
                          int max_png_side = 1024, double draw_thresh = 0.0);

// A file-name-safe version of an image id (anything but [A-Za-z0-9._-] becomes '_').
std::string safe_file_name(const std::string& id);

}  // namespace sx::train
