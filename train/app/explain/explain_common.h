// What every `spinexr explain` topic shares: the image as the detector sees it (the loader's
// resize and padding, train/tasks/det_train.h detection_loader_options without augmentation), its
// ground truth in those pixels, the detector (a checkpoint via train/app/predict.h, or a fresh
// seeded model), and small drawing and formatting helpers over train/eval/plot.h.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/json.h"
#include "models/detection_model.h"
#include "train/app/explain/explain.h"
#include "train/eval/plot.h"
#include "train/eval/text.h"  // strf

namespace sx::train::explain {

struct GtBox {
  double x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // pixels of the resized image
  int64_t label = 0;
};

// One image of the dataset as the detector sees it.
struct Scene {
  io::Dataset ds;
  int64_t index = -1;
  std::string image_id;
  int label = 0;                    // 1 abnormal
  io::Batch batch;                  // [1, C, Hp, Wp] in [0, 1] (the detector normalises inside)
  int width = 0, height = 0;        // resized, before padding
  int pad_w = 0, pad_h = 0;         // the padded batch size (anchors cover it)
  std::vector<uint8_t> grey;        // the padded image, 8-bit, pad_w * pad_h
  std::vector<GtBox> gt;
  std::vector<std::string> class_names;
};

// Opens the dataset split and picks the image (options.image_id, else the first abnormal one, else
// the first); no pixels yet. Throws ValueError when the id is not in the split.
Scene open_scene(const ExplainOptions& o);
// Loads the image at longest side `size` (or, with min_size > 0, shortest side min_size capped at
// `size`, as the checkpoint was trained) with `channels` channels (fills batch, grey, gt, sizes).
void load_pixels(Scene& s, int size, int channels, int min_size = 0);
// A batch of the dataset images `pool` prepared the same way (no augmentation).
io::Batch make_plain_batch(const io::Dataset& ds, const std::vector<int64_t>& pool, int size, int channels,
                           int min_size = 0);
models::ImageList scene_images(const Scene& s);
Tensor gt_boxes_tensor(const Scene& s);  // [G, 4] float32

struct LoadedModel {
  std::shared_ptr<models::DetectionModel> model;
  bool fresh = false;
  int size = 0;       // input size (longest side)
  int min_size = 0;   // > 0: the checkpoint resized the shortest side to this (config.min_size)
  std::string note;   // one line: which model, and "freshly initialised" when so
};
// `need`: "" (any), "retinanet" or "faster_rcnn". A fresh model is of kind `need` when given, else
// options.model; a checkpoint of another kind than `need` is a ValueError naming the topic.
LoadedModel load_model(const ExplainOptions& o, const std::string& topic, const std::string& need,
                       int64_t num_classes);

// The image (padded) as a canvas, scaled.
plot::Canvas scene_canvas(const Scene& s, double scale = 1.0);
// An outlined box (image pixels, scaled), optionally with a tag like draw_boxes' (above the box, or
// below it with tag_below or when there is no room above).
void draw_box(plot::Canvas& cv, double x1, double y1, double x2, double y2, plot::Color c, int thickness = 1,
              double scale = 1.0, const std::string& tag = "", bool tag_below = false);
// "P3" for stride 8.
std::string level_name(int64_t stride);
std::string short_class(const std::string& name);  // "Osteophytes" -> "Osteo"

// Writes OUT/<topic>.png (first canvas), OUT/<topic>-<suffix>.png for the others, and the JSON;
// records the paths in r.
void write_outputs(ExplainResult& r, const ExplainOptions& o, const std::string& topic,
                   const std::vector<std::pair<std::string, plot::Canvas>>& pictures);
// The common head of each topic's JSON: topic, image, split, model note, sizes.
io::Json scene_json(const std::string& topic, const Scene& s, const LoadedModel& m);

// Topic entry points (one per .cpp or two).
ExplainResult explain_anchors(const ExplainOptions& o);
ExplainResult explain_matching(const ExplainOptions& o);
ExplainResult explain_focal(const ExplainOptions& o);
ExplainResult explain_heads(const ExplainOptions& o);
ExplainResult explain_rpn(const ExplainOptions& o);
ExplainResult explain_roi_align(const ExplainOptions& o);
ExplainResult explain_nms(const ExplainOptions& o);
ExplainResult explain_rule(const ExplainOptions& o);

}  // namespace sx::train::explain
