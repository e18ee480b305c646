// The decode-once cache: `spinexr prepare --data DIR --out CACHE --size N`.
//
// Every DICOM of the chosen splits is decoded once, in parallel (JPEG 2000 at the coarsest
// resolution level still >= the cached size, see j2k_reduced.h), windowed (bone bright, MONOCHROME1
// inverted), resized so its longest side is at most N (area averaging; never enlarged) and stored as
// a 16-bit grey PNG (0..65535 = the [0, 1] windowed range):
//   CACHE/images/<split>/<image_id>.png
//   CACHE/annotations/<split>.csv        (the source CSVs, copied)
//   CACHE/spinexr_cache.csv              the index, one row per image:
//     image_id,split,file,orig_width,orig_height,width,height,window_center,window_width,window_source,photometric,status
// Dataset::open(CACHE) then reads the PNGs instead of the DICOMs (boxes rescaled from the index).
//
// Resumable and crash-safe: each PNG is written atomically, then a line is appended (and flushed)
// to CACHE/spinexr_cache.journal. A rerun reads the index and the journal and skips images already
// done whose PNG exists; at the end the merged index is written atomically and the journal removed.
// A bad file is reported (status "error: ...") and counted, never fatal; a rerun retries it.
//
// Listed images whose DICOM is absent (a partial download): the full list is written atomically to
// CACHE/missing.txt (one path per line; a stale list is removed when nothing is missing) and, unless
// allow_missing, prepare throws before decoding anything: one line counting them per split and
// naming the first few. With allow_missing the images present are prepared and the summary says
// how many are missing (the cache's datasets then list them as missing, see dataset.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/dicom.h"

namespace sx::io {

struct PrepareOptions {
  std::string data, out;
  int size = 1024;                     // longest side of the cached images
  std::vector<std::string> splits = {"train", "test"};
  WindowOptions window;
  DicomLimits limits;
  int threads = 0;                     // 0: all cores
  bool progress = true;
  bool allow_missing = false;          // prepare the images present when some listed ones are absent
};

struct PrepareSummary {
  int64_t images = 0, written = 0, skipped = 0, failed = 0;  // images: those present (to prepare)
  int64_t missing = 0;                 // listed images without a DICOM (allow_missing)
  std::string missing_summary;         // one line (missing_images_summary), "" when none is missing
  std::vector<std::string> errors;     // "image_id: reason", and "split: reason" for a split not read
  double seconds = 0;
};

PrepareSummary prepare_cache(const PrepareOptions& opt);

// Decodes one DICOM into the cache's representation (exposed for `convert` and the benchmark):
// windowed [0, 1] values resized so the longest side is at most max_side.
struct PreparedImage {
  int orig_width = 0, orig_height = 0, width = 0, height = 0;
  std::vector<uint16_t> pixels;        // width * height, 0..65535
  WindowUsed window;
  std::string photometric;
  int reduce = 0;                      // JPEG 2000 resolution levels skipped (see j2k_reduced.h)
};
PreparedImage prepare_image(const std::string& dicom_path, int max_side, const WindowOptions& window = {},
                            const DicomLimits& limits = {});

}  // namespace sx::io
