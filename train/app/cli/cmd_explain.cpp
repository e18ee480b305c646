// spinexr explain TOPIC: how detection works inside, as pictures drawn from a real run on one image
// (train/app/explain/explain.h has the topics and what each draws).
#include <cstdio>

#include "tensor/errors.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/app/cli/det_cli_common.h"
#include "train/app/explain/explain.h"
#include "train/tasks/det_geometry.h"

namespace {

using namespace sx;

std::string summary() {
  std::string s =
      "Explain one step of detection with pictures drawn from a real run on one image of --data (the first\n"
      "abnormal image of --split unless --image), with a detector checkpoint (--ckpt) or, without one, a\n"
      "freshly initialised model (seeded; --arch/--fpn-channels/... below; its --score-thresh defaults to 0 so\n"
      "its near-prior scores still give boxes; given explicitly it also overrides a checkpoint's). Writes OUT/TOPIC.png (+ OUT/TOPIC-*.png) and OUT/TOPIC.json and\n"
      "prints the explanation with its numbers. Topics:\n";
  for (const auto& [t, d] : train::explain::explain_topics()) s += "  " + t + std::string(11 - t.size(), ' ') + d + "\n";
  return s;
}

int run_explain(int argc, char** argv) {
  cli::Args args("explain", summary());
  args.positional("TOPIC", "anchors | matching | focal | heads | rpn | roi-align | nms | rule")
      .required("data", "dataset root (release, flat or `prepare` cache layout; e.g. a `spinexr synth` folder)")
      .required("out", "output folder")
      .option("image", "", "image_id to explain (default: the first abnormal image of the split)")
      .option("split", "train", "train | test")
      .option("ckpt", "", "detector checkpoint (train-det); empty: a freshly initialised model")
      .option("cls", "", "classifier checkpoint (train-cls) giving p_abnormal for `rule`")
      .option("p-abnormal", "0.5", "rule without --cls: the abnormal probability to apply the rule with")
      .option("model", "retinanet", "fresh model: retinanet | faster_rcnn (rpn and roi-align always use faster_rcnn,\n"
                                    "      focal retinanet)")
      .option("size", "0", "longest image side (0: the checkpoint's, else 512)")
      .option("hard-p", "0.5", "focal: a background anchor is a hard negative when some class has p >= this")
      .option("batch", "4", "focal: images in the batch (the explained one and those after it)")
      .option("candidates", "40", "nms: the highest-scoring boxes replayed")
      .option("frames", "12", "nms: steps drawn in the contact sheet")
      .option("seed", "0", "fresh weights and the sample of negatives drawn")
      .option("threads", "0", "CPU threads (0: OpenMP's default)");
  cli::DetectorOptionDefaults d;
  d.arch = "resnet18";
  d.channels = "1";
  d.fpn_channels = "64";
  d.score_thresh = "0";
  d.anchor_base = std::to_string(static_cast<int>(train::kDefaultAnchorBase));  // train-det's default
  cli::add_detector_options(args, d);
  if (!args.parse(argc, argv)) return 0;
  cli::apply_threads_option(args);
  SX_CHECK(args.positionals().size() == 1, "give one topic (spinexr explain --help lists them), got ",
           args.positionals().size());
  const std::string topic = args.positionals()[0];
  train::explain::ExplainOptions o;
  o.data = args.get("data");
  o.out = args.get("out");
  o.image_id = args.get("image");
  o.split = args.get("split");
  o.ckpt = args.get("ckpt");
  o.cls_ckpt = args.get("cls");
  o.p_abnormal = args.get_double("p-abnormal");
  o.model = args.get("model");
  o.size = static_cast<int>(args.get_int("size"));
  SX_CHECK(o.size >= 0, "--size must be >= 0, got ", o.size);
  o.hard_p = args.get_double("hard-p");
  o.batch = static_cast<int>(args.get_int("batch"));
  o.candidates = static_cast<int>(args.get_int("candidates"));
  o.frames = static_cast<int>(args.get_int("frames"));
  o.seed = static_cast<uint64_t>(args.get_int("seed"));
  // The anchor layout --anchor-base gives follows the model the topic builds.
  const std::string kind = topic == "rpn" || topic == "roi-align" ? "faster_rcnn" : topic == "focal" ? "retinanet" : o.model;
  o.det = cli::detector_options_from_args(args, kind);
  // Given explicitly, --score-thresh also replaces a checkpoint's stored threshold (nms, rule).
  if (args.has("score-thresh")) o.ckpt_score_thresh = args.get_double("score-thresh");
  const auto r = train::explain::run_explain(topic, o);
  std::fputs(r.text.c_str(), stdout);
  std::printf("\nwrote");
  for (const auto& p : r.pngs) std::printf(" %s", p.c_str());
  std::printf(" %s\n", r.json_path.c_str());
  return 0;
}

const cli::Registrar kRegister("explain", "pictures of how detection works inside (anchors, matching, focal, ...)",
                               run_explain);

}  // namespace
