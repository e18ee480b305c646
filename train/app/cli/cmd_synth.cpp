// spinexr synth: write a synthetic VinDr-SpineXR dataset (release layout, real DICOM files).
#include <cstdio>

#include "io/synth.h"
#include "train/app/cli/cli.h"

namespace {

int run_synth(int argc, char** argv) {
  sx::cli::Args args("synth",
                     "Write a synthetic VinDr-SpineXR dataset in the release layout: annotations/{train,test}.csv and\n"
                     "{train,test}_images/<image_id>.dicom (16-bit, BitsStored 12, mostly JPEG 2000 lossless).\n"
                     "The same seed gives the same bytes.");
  args.required("out", "output folder (the release root)")
      .option("images", "200", "number of images")
      .option("seed", "0", "random seed")
      .option("style", "classic",
              "classic (high-contrast lesions a small model learns in minutes) | realistic (a lateral lumbar\n"
              "radiograph at the release's scale, lesions drawn subtly as their radiologic signs)")
      .option("size", "0",
              "image height in pixels; 0: the style's default (classic: 512, exact, width 0.62-0.85 of it;\n"
              "realistic: 2500, nominal, rows 0.9-1.16 and columns 0.5-0.66 of it)")
      .option("test-fraction", "0.2", "fraction of studies in the test split (when --test-images is 0)")
      .option("test-images", "0", "exactly this many of the --images form the test split (0: by --test-fraction)")
      .option("normal-fraction", "0.5", "fraction of normal images")
      .option("threads", "0", "worker threads (0: all cores)")
      .flag("quiet", "no progress bar");
  if (!args.parse(argc, argv)) return 0;
  sx::io::SynthOptions o;
  o.out = args.get("out");
  o.images = static_cast<int>(args.get_int("images"));
  o.seed = static_cast<uint64_t>(args.get_int("seed"));
  o.style = sx::io::parse_synth_style(args.get("style"));
  o.size = static_cast<int>(args.get_int("size"));
  o.test_images = static_cast<int>(args.get_int("test-images"));
  o.test_fraction = args.get_double("test-fraction");
  o.normal_fraction = args.get_double("normal-fraction");
  o.threads = static_cast<int>(args.get_int("threads"));
  o.progress = !args.get_flag("quiet");
  sx::io::SynthSummary s = sx::io::synthesize_dataset(o);
  std::printf("wrote %lld images (%lld train, %lld test; %lld normal) from %lld studies, %lld boxes, in %.1f s to %s\n",
              static_cast<long long>(s.images), static_cast<long long>(s.train_images),
              static_cast<long long>(s.test_images), static_cast<long long>(s.normal_images),
              static_cast<long long>(s.studies), static_cast<long long>(s.boxes), s.seconds, o.out.c_str());
  for (const auto& kv : s.boxes_per_class) std::printf("  %-22s %lld boxes\n", kv.first.c_str(), static_cast<long long>(kv.second));
  for (const auto& kv : s.codecs) std::printf("  %-22s %lld files\n", kv.first.c_str(), static_cast<long long>(kv.second));
  return 0;
}

const sx::cli::Registrar kRegister("synth", "write a synthetic VinDr-SpineXR dataset (DICOM + CSV)", run_synth);

}  // namespace
