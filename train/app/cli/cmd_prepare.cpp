// spinexr prepare: decode every DICOM once into a cache of resized 16-bit PNGs (see io/prepare.h).
#include <algorithm>
#include <cstdio>

#include "io/prepare.h"
#include "train/app/cli/cli.h"

namespace {

int run_prepare(int argc, char** argv) {
  sx::cli::Args args("prepare",
                     "Decode every DICOM of a VinDr-SpineXR folder once, in parallel, into CACHE: windowed, resized\n"
                     "16-bit PNGs plus an index. Resumable (finished images are skipped); a bad file is reported\n"
                     "and counted, never fatal. Training reads the cache with --data CACHE. Listed images whose\n"
                     "DICOM is absent (a partial download) are listed in CACHE/missing.txt and stop the command\n"
                     "before any decoding, unless --allow-missing.");
  args.required("data", "dataset folder (release or flat layout)")
      .required("out", "cache folder (created)")
      .option("size", "1024", "longest side of the cached images (never enlarged)")
      .option("window", "dicom", "windowing: none, dicom, minmax or percentile")
      .option("splits", "train,test", "comma-separated splits")
      .option("threads", "0", "worker threads (0: all cores)")
      .flag("allow-missing",
            "prepare the images present when listed DICOMs are absent (a partial download); the full list\n"
            "      still goes to CACHE/missing.txt")
      .flag("quiet", "no progress bar");
  if (!args.parse(argc, argv)) return 0;
  sx::io::PrepareOptions o;
  o.data = args.get("data");
  o.out = args.get("out");
  o.size = static_cast<int>(args.get_int("size"));
  o.window.mode = sx::io::parse_window_mode(args.get("window"));
  o.threads = static_cast<int>(args.get_int("threads"));
  o.progress = !args.get_flag("quiet");
  o.allow_missing = args.get_flag("allow-missing");
  o.splits.clear();
  std::string s = args.get("splits");
  for (size_t p = 0; p <= s.size();) {
    size_t c = s.find(',', p);
    if (c == std::string::npos) c = s.size();
    if (c > p) o.splits.push_back(s.substr(p, c - p));
    p = c + 1;
  }
  sx::io::PrepareSummary r = sx::io::prepare_cache(o);
  std::printf("prepare: %lld images: %lld written, %lld already cached, %lld failed, in %.1f s (%.1f images/s) -> %s\n",
              static_cast<long long>(r.images), static_cast<long long>(r.written), static_cast<long long>(r.skipped),
              static_cast<long long>(r.failed), r.seconds, r.seconds > 0 ? r.written / r.seconds : 0.0, o.out.c_str());
  if (r.missing > 0)
    std::printf("prepare: %s; left out (--allow-missing), full list in %s/missing.txt\n", r.missing_summary.c_str(),
                o.out.c_str());
  // The first errors only: the status column of the index has them all.
  const size_t shown = std::min<size_t>(r.errors.size(), 20);
  for (size_t i = 0; i < shown; ++i) std::printf("  %s\n", r.errors[i].c_str());
  if (r.errors.size() > shown)
    std::printf("  ... and %zu more (the status column of %s/spinexr_cache.csv)\n", r.errors.size() - shown,
                o.out.c_str());
  return 0;
}

const sx::cli::Registrar kRegister("prepare", "decode the DICOMs once into a cache of 16-bit PNGs", run_prepare);

}  // namespace
