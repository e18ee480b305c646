// A synthetic VinDr-SpineXR: the release layout, CSV header and DICOM format, with drawn lateral
// spine radiographs whose lesions a small model can learn in minutes.
//
//   DIR/annotations/train.csv, DIR/annotations/test.csv   (release header, one row per box)
//   DIR/train_images/<image_id>.dicom, DIR/test_images/<image_id>.dicom
//
// Each image is a lateral view: soft tissue, a gently curved column of 5-7 vertebral bodies with a
// bright cortical rim, disc spaces, posterior elements with dark foramina, noise. About half the
// images are normal. Lesions have distinct signatures and tight boxes (the box is the extent of the
// lesion's drawn pixels):
//   Osteophytes          bright triangular spurs at vertebral corners (1-4 per event)
//   Disc space narrowing a disc space squeezed to a slit with bright sclerotic endplates
//   Surgical implant     saturated metal: two or three pedicle screws joined by a rod
//   Spondylolysthesis    a vertebra slipped forward over the one below (a step in the front line)
//   Vertebral collapse   a flattened, wedge-shaped, dense vertebra
//   Foraminal stenosis   a foramen filled by bright bony overgrowth
//   Other lesions        a round sclerotic lesion with a dark lytic ring
// Class frequencies follow the release's order (Osteophytes by far the most frequent, then disc
// space narrowing, ...) flattened by a power of 0.35 so that the rare classes still have a dozen
// examples or more in a 200-image set (Osteophytes stay the majority of boxes); box sizes follow the release's median w x h ratios between classes, scaled so that
// the smallest lesions are about 8-10% of the image height.
//
// DICOM: 16-bit, BitsStored 12, ~80% JPEG 2000 lossless, ~10% uncompressed, ~10% JPEG-LS;
// ~15% MONOCHROME1 (stored inverted, so after the reader's inversion bone is bright again); window
// tags on ~90%; Modality absent on ~70%; CR or DX-for-presentation SOP classes; rad1/rad2/rad3.
// Deterministic: every image is a pure function of (seed, index), UIDs are derived from the seed, no
// clock is written, so the same seed gives the same bytes whatever the thread count.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/annotations.h"
#include "io/dicom_write.h"

namespace sx::io {

struct SynthOptions {
  std::string out;            // release root (created)
  int images = 200;
  uint64_t seed = 0;
  int size = 512;             // image height (rows); width is 0.62-0.85 of it
  double test_fraction = 0.2; // by study
  double normal_fraction = 0.5;
  int threads = 0;            // 0: hardware concurrency
  bool progress = true;       // progress bar on stderr
};

// One rendered image, before writing.
struct SynthImage {
  int rows = 0, columns = 0;
  std::vector<uint16_t> stored;  // as written into the DICOM (MONOCHROME1 already inverted)
  std::vector<uint16_t> display; // bone-bright values (== stored for MONOCHROME2)
  std::vector<Box> boxes;        // label = class id in vindr_detection_classes() order
  DicomWriteSpec spec;           // codec, photometric, window, UIDs (image_id not included)
};

// Renders image `index` of a dataset with `seed` (pure function). `size` = rows.
SynthImage render_synthetic(uint64_t seed, int64_t index, int size, double normal_fraction = 0.5);

struct SynthSummary {
  int64_t images = 0, train_images = 0, test_images = 0, normal_images = 0, boxes = 0, studies = 0;
  std::map<std::string, int64_t> boxes_per_class;
  std::map<std::string, int64_t> codecs;
  double seconds = 0;
};

// Writes the whole dataset. Throws sx::IOError on file errors.
SynthSummary synthesize_dataset(const SynthOptions& opt);

}  // namespace sx::io
