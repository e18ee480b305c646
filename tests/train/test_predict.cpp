// The decision rule, the pipeline's output formats (predictions.csv, results.json) read back, and
// the whole pipeline on a tiny synthetic dataset with freshly initialised checkpoints.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <numeric>

#include "io/annotations.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/dicom.h"
#include "io/dicom_write.h"
#include "io/synth.h"
#include "models/faster_rcnn.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"
#include "train/tasks/cls_data.h"
#include "train/eval/decision_rule.h"
#include "train/eval/det_eval.h"
#include "train/tasks/det_train.h"
#include "train/app/predict.h"

namespace sx::train {
namespace {

namespace fs = std::filesystem;

TEST(DecisionRule, KeepsEverythingWhenTheClassifierIsConfident) {
  eval::DecisionRule r;  // c = 0.28, box threshold 0.5
  EXPECT_EQ(r.classifier_threshold, 0.28);
  EXPECT_EQ(r.box_threshold, 0.5);
  std::vector<double> s = {0.9, 0.5, 0.49, 0.05};
  EXPECT_EQ(r.kept_indices(0.28, s), (std::vector<int>{0, 1, 2, 3}));  // p == c counts as abnormal
  EXPECT_EQ(r.kept_indices(0.95, s), (std::vector<int>{0, 1, 2, 3}));
  // Below c only boxes scoring >= 0.5 survive (0.5 itself included).
  EXPECT_EQ(r.kept_indices(0.2799, s), (std::vector<int>{0, 1}));
  EXPECT_EQ(r.kept_indices(0.0, {0.3, 0.2}), (std::vector<int>{}));
  EXPECT_TRUE(r.kept_indices(0.1, {}).empty());
  // Both thresholds are options.
  r.classifier_threshold = 0.6;
  r.box_threshold = 0.04;
  EXPECT_EQ(r.kept_indices(0.5, s), (std::vector<int>{0, 1, 2, 3}));
  r.box_threshold = 0.95;
  EXPECT_EQ(r.kept_indices(0.5, s), (std::vector<int>{}));
  EXPECT_EQ(r.kept_indices(0.6, s).size(), 4u);
  // Disabled: the detector alone.
  r.enabled = false;
  EXPECT_EQ(r.kept_indices(0.0, s).size(), 4u);
  EXPECT_THROW(eval::DecisionRule{}.kept_indices(NAN, s), ValueError);
}

PipelineImage make_image(const std::string& id, double p, std::vector<eval::EvalBox> dets) {
  PipelineImage im;
  im.image_id = id;
  im.study_id = "study-" + id;
  im.series_id = "series-" + id;
  im.p_abnormal = p;
  im.dets = std::move(dets);
  return im;
}

std::vector<std::string> names() { return io::vindr_detection_classes(); }

TEST(DecisionRule, AppliedToPipelineImagesChangesTheMetrics) {
  // A normal image whose weak false positive the rule removes, and an abnormal image.
  std::vector<PipelineImage> ims = {make_image("a", 0.9, {{10, 10, 30, 30, 0, 0.3}}),
                                    make_image("n", 0.1, {{50, 50, 70, 70, 0, 0.4}})};
  ims[0].gt = {{10, 10, 30, 30, 0, 1.0}};
  ims[0].label = 1;
  ims[1].label = 0;
  apply_decision_rule(ims, eval::DecisionRule{});
  EXPECT_EQ(ims[0].kept.size(), 1u);
  EXPECT_EQ(ims[1].kept.size(), 0u);
  eval::DetEvalConfig cfg;
  cfg.class_names = names();
  auto all = eval::evaluate_detections(pipeline_evals(ims, false), cfg);
  auto ruled = eval::evaluate_detections(pipeline_evals(ims, true), cfg);
  EXPECT_NEAR(all.map50, 0.5, 1e-12);  // the FP (0.4) outranks the TP (0.3)
  EXPECT_DOUBLE_EQ(ruled.map50, 1.0);
}

TEST(PredictFormats, CsvReadsBack) {
  std::vector<PipelineImage> ims = {
      make_image("img,1", 0.8, {}),  // a comma: quoted
      make_image("img2", 0.1, {}),
  };
  ims[0].kept = {{12.345, 20.0, 80.5, 99.994, 0, 0.91234567}, {1, 2, 3, 4, 2, 0.5}};
  const std::string csv = predictions_csv(ims, names());
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax,score");
  auto rows = parse_predictions_csv(csv);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].image_id, "img,1");
  EXPECT_EQ(rows[0].study_id, "study-img,1");
  EXPECT_EQ(rows[0].series_id, "series-img,1");
  EXPECT_EQ(rows[0].rad_id, "");
  EXPECT_EQ(rows[0].lesion_type, "Osteophytes");
  EXPECT_TRUE(rows[0].has_box);
  EXPECT_NEAR(rows[0].xmin, 12.35, 1e-9);  // two decimals
  EXPECT_NEAR(rows[0].ymax, 99.99, 1e-9);
  EXPECT_NEAR(rows[0].score, 0.912346, 1e-9);
  EXPECT_EQ(rows[1].lesion_type, names()[2]);
  EXPECT_EQ(rows[2].image_id, "img2");
  EXPECT_EQ(rows[2].lesion_type, "No finding");
  EXPECT_FALSE(rows[2].has_box);
  EXPECT_NEAR(rows[2].score, 0.9, 1e-9);  // the normal probability
  // The release's own reader accepts it (columns by name, the score column ignored).
  io::AnnotationTable t = io::parse_annotations(csv, "predictions.csv");
  ASSERT_EQ(t.images.size(), 2u);
  EXPECT_EQ(t.images[0].boxes.size(), 2u);
  EXPECT_EQ(t.images[0].boxes[1].label, 2);
  EXPECT_FALSE(t.images[1].abnormal());
  // Malformed input is refused with the line number.
  EXPECT_THROW(parse_predictions_csv("image_id,score\n"), IOError);
  EXPECT_THROW(parse_predictions_csv(csv + "s,se,i,,Osteophytes,1,2,x,4,0.5\n"), IOError);
}

TEST(PredictFormats, CocoJsonReadsBack) {
  std::vector<PipelineImage> ims = {make_image("a\"b", 0.8, {}), make_image("c", 0.2, {})};
  ims[0].kept = {{10, 20, 40, 60, 3, 0.75}};
  ims[1].kept = {{0.5, 1.5, 2.5, 4.5, 6, 0.6}};
  auto res = parse_coco_results_json(coco_results_json(ims, names()));
  ASSERT_EQ(res.size(), 2u);
  EXPECT_EQ(res[0].image_id, "a\"b");
  EXPECT_EQ(res[0].category_id, 4);
  EXPECT_EQ(res[0].category_name, names()[3]);
  EXPECT_DOUBLE_EQ(res[0].x, 10);
  EXPECT_DOUBLE_EQ(res[0].y, 20);
  EXPECT_DOUBLE_EQ(res[0].w, 30);
  EXPECT_DOUBLE_EQ(res[0].h, 40);
  EXPECT_DOUBLE_EQ(res[0].score, 0.75);
  EXPECT_EQ(res[1].category_id, 7);
  EXPECT_DOUBLE_EQ(res[1].h, 3.0);
  EXPECT_TRUE(parse_coco_results_json(coco_results_json({}, names())).empty());
  EXPECT_THROW(parse_coco_results_json("[{\"image_id\": \"x\"}]"), IOError);
  EXPECT_THROW(parse_coco_results_json("{}"), IOError);
  EXPECT_THROW(parse_coco_results_json("[1, 2"), IOError);
}

TEST(PredictFormats, SafeFileNames) {
  EXPECT_EQ(safe_file_name("abc-1.2_x"), "abc-1.2_x");
  EXPECT_EQ(safe_file_name("../a b/c"), ".._a_b_c");
  EXPECT_EQ(safe_file_name(".."), "_..");
}

// The whole pipeline on a few synthetic radiographs with freshly initialised models, saved the way
// train-cls and train-det save them.
// `predict FILE...`: the image id is the file name, study and series ids the DICOM's UIDs (the
// release's CSVs carry the same values); a file without them gets empty fields, never another id.
TEST(Pipeline, FilesGiveStudyAndSeriesFromTheDicom) {
  const fs::path root = fs::temp_directory_path() / ("sx_test_predict_uids_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  std::vector<uint16_t> px(24 * 20, 1000);
  io::DicomWriteSpec s;
  s.rows = 24;
  s.columns = 20;
  s.study_uid = "1.2.826.0.1.3680043.8.498.11";
  s.series_uid = "1.2.826.0.1.3680043.8.498.12";
  s.sop_uid = "1.2.826.0.1.3680043.8.498.13";
  const std::string a = (root / "0a1b2c.dicom").string();
  io::write_dicom(a, px.data(), s);
  s.study_uid = "1.2.826.0.1.3680043.8.498.21";
  s.series_uid = "1.2.826.0.1.3680043.8.498.22";
  s.sop_uid = "1.2.826.0.1.3680043.8.498.23";
  const std::string b = (root / "ffee.dcm").string();
  io::write_dicom(b, px.data(), s);
  io::Dataset fd = dataset_from_files({a, b}, io::ClassMap::vindr_default());
  ASSERT_EQ(fd.size(), 2);
  EXPECT_EQ(fd.sample(0).image_id, "0a1b2c");
  EXPECT_EQ(fd.sample(0).study_id, "1.2.826.0.1.3680043.8.498.11");
  EXPECT_EQ(fd.sample(0).series_id, "1.2.826.0.1.3680043.8.498.12");
  EXPECT_EQ(fd.sample(1).image_id, "ffee");
  EXPECT_EQ(fd.sample(1).study_id, "1.2.826.0.1.3680043.8.498.21");
  EXPECT_EQ(fd.sample(1).series_id, "1.2.826.0.1.3680043.8.498.22");
  // A file that is not DICOM is refused up front, naming it.
  const std::string junk = (root / "junk.dicom").string();
  io::write_file_atomic(junk, "not a dicom file at all, just text");
  try {
    dataset_from_files({a, junk}, io::ClassMap::vindr_default());
    ADD_FAILURE() << "expected an IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find(junk), std::string::npos) << e.what();
  }
  fs::remove_all(root);
}

TEST(Pipeline, RunsBothStagesOnDicomFiles) {
  const fs::path root = fs::temp_directory_path() / ("sx_test_predict_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  io::SynthOptions so;
  so.out = (root / "data").string();
  so.images = 6;
  so.size = 128;
  so.seed = 3;
  so.threads = 1;
  so.progress = false;
  io::synthesize_dataset(so);
  io::DatasetOptions dopt;
  dopt.split = "train";
  io::Dataset ds = io::Dataset::open(so.out, dopt);
  ASSERT_GT(ds.size(), 0);

  auto cls = make_cls_model("resnet18", 1, 1);
  const std::string cls_ckpt = (root / "cls.safetensors").string();
  save_checkpoint(cls_ckpt, *cls, nullptr, nullptr, TrainState{}, {{"arch", "resnet18"}, {"size", "64"}, {"channels", "1"}});

  models::DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.fpn_channels = 32;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  auto det = make_detector("faster_rcnn", o);
  Metadata dmd = detector_metadata(*det);
  dmd["config.size"] = "128";  // what train-det adds
  const std::string det_ckpt = (root / "det.safetensors").string();
  save_checkpoint(det_ckpt, *det, nullptr, nullptr, TrainState{}, dmd);
  EXPECT_EQ(checkpoint_input_size(det_ckpt), 128);

  PipelineConfig pc;
  pc.cls_ckpt = cls_ckpt;
  pc.det_ckpt = det_ckpt;
  pc.batch = 2;
  pc.workers = 0;
  pc.progress = false;
  std::vector<int64_t> pool(ds.size());
  std::iota(pool.begin(), pool.end(), 0);
  auto ims = run_pipeline(ds, pool, pc, eval::DecisionRule{});
  ASSERT_EQ(ims.size(), pool.size());
  int64_t total = 0;
  for (size_t i = 0; i < ims.size(); ++i) {
    const auto& im = ims[i];
    EXPECT_EQ(im.image_id, ds.sample(pool[i]).image_id);
    EXPECT_EQ(im.label, ds.sample(pool[i]).label);
    EXPECT_EQ(im.gt.size(), ds.sample(pool[i]).boxes.size());
    EXPECT_GE(im.p_abnormal, 0.0);
    EXPECT_LE(im.p_abnormal, 1.0);
    EXPECT_GT(im.orig_width, 0);
    EXPECT_LE(im.dets.size(), 100u);
    for (const auto& d : im.dets) {  // original pixels, inside the image
      EXPECT_GE(d.x1, -1e-3);
      EXPECT_LE(d.x2, im.orig_width + 1e-3);
      EXPECT_LE(d.y2, im.orig_height + 1e-3);
      EXPECT_LE(d.x1, d.x2);
    }
    for (size_t k = 1; k < im.dets.size(); ++k) EXPECT_GE(im.dets[k - 1].score, im.dets[k].score);
    total += static_cast<int64_t>(im.dets.size());
  }
  EXPECT_GT(total, 0);  // a random detector still proposes boxes (scores ~ 1/8 > 0.05)
  // The rule's two branches: a classifier that flags nothing keeps only strong boxes; one that
  // flags everything keeps all.
  // An untrained detector scores ~1/8, so give the first image one strong and one weak box (kept
  // score-descending) to put boxes on both sides of the 0.5 box threshold.
  {
    eval::EvalBox strong{}, weak{};
    strong.x1 = 1, strong.y1 = 2, strong.x2 = 9, strong.y2 = 12, strong.score = 0.75, strong.label = 3;
    weak = strong;
    weak.score = 0.499;
    ims[0].dets.insert(ims[0].dets.begin(), strong);
    ims[0].dets.push_back(weak);
  }
  eval::DecisionRule strict;
  strict.classifier_threshold = 1.01;
  apply_decision_rule(ims, strict);
  int64_t strong_kept = 0;
  for (const auto& im : ims) {
    size_t above = 0;
    for (const auto& d : im.dets) above += d.score >= 0.5;
    EXPECT_EQ(im.kept.size(), above);  // exactly the boxes at or above 0.5, no others
    for (const auto& k : im.kept) EXPECT_GE(k.score, 0.5);
    strong_kept += static_cast<int64_t>(im.kept.size());
  }
  ASSERT_EQ(strong_kept, 1);  // the injected strong box, and the weak one dropped
  EXPECT_EQ(ims[0].kept[0].score, 0.75);
  total += 2;
  eval::DecisionRule lax;
  lax.classifier_threshold = 0.0;
  apply_decision_rule(ims, lax);
  for (const auto& im : ims) EXPECT_EQ(im.kept.size(), im.dets.size());

  // Outputs: CSV rows = kept boxes + one per box-less image; JSON = kept boxes; PNGs.
  auto rows = parse_predictions_csv(predictions_csv(ims, ds.classes().class_names()));
  int64_t expect_rows = 0;
  for (const auto& im : ims) expect_rows += im.kept.empty() ? 1 : static_cast<int64_t>(im.kept.size());
  EXPECT_EQ(static_cast<int64_t>(rows.size()), expect_rows);
  EXPECT_EQ(static_cast<int64_t>(parse_coco_results_json(coco_results_json(ims, ds.classes().class_names())).size()),
            total);
  const std::string png = (root / "p.png").string();
  write_prediction_png(ds, ims[0], ds.classes().class_names(), png, 100);
  EXPECT_GT(fs::file_size(png), 100u);

  // Files given on the command line: ids from the file names, no ground truth.
  std::vector<std::string> files = {ds.sample(0).path, ds.sample(1).path};
  io::Dataset fd = dataset_from_files(files, io::ClassMap::vindr_default());
  ASSERT_EQ(fd.size(), 2);
  EXPECT_EQ(fd.sample(0).image_id, fs::path(files[0]).stem().string());
  auto fims = run_pipeline(fd, {0, 1}, pc, eval::DecisionRule{});
  ASSERT_EQ(fims.size(), 2u);
  EXPECT_EQ(fims[0].dets.size() + 2, ims[0].dets.size());  // same image, same model, same boxes (+ the 2 injected)
  EXPECT_NEAR(fims[0].p_abnormal, ims[0].p_abnormal, 1e-6);
  // study_id and series_id come from the DICOMs (StudyInstanceUID, SeriesInstanceUID), as `info` reads them.
  auto frows = parse_predictions_csv(predictions_csv(fims, fd.classes().class_names()));
  ASSERT_FALSE(frows.empty());
  for (const auto& r : frows) {
    const size_t k = r.image_id == fims[0].image_id ? 0 : 1;
    ASSERT_EQ(r.image_id, fims[k].image_id);
    const io::DicomInfo info = io::read_dicom_info(files[k]);
    ASSERT_FALSE(info.study_uid.empty());
    EXPECT_EQ(r.study_id, info.study_uid);
    EXPECT_EQ(r.series_id, info.series_uid);
    EXPECT_NE(r.study_id, r.image_id);
  }
  EXPECT_THROW(dataset_from_files({files[0], files[0]}, io::ClassMap::vindr_default()), IOError);
  EXPECT_THROW(dataset_from_files({(root / "missing.dicom").string()}, io::ClassMap::vindr_default()), IOError);
  fs::remove_all(root);
}

}  // namespace
}  // namespace sx::train
