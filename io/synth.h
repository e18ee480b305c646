// A synthetic VinDr-SpineXR: the release layout, CSV header and DICOM format, with drawn lateral
// spine radiographs in one of two styles.
//
//   DIR/annotations/train.csv, DIR/annotations/test.csv   (release header, one row per box)
//   DIR/train_images/<image_id>.dicom, DIR/test_images/<image_id>.dicom
//
// ---- style "classic" (the default): lesions a small model learns in minutes --------------------
// Each image is a lateral view: soft tissue, a gently curved column of 5-7 vertebral bodies with a
// bright cortical rim, disc spaces, posterior elements with dark foramina, noise. Lesions have
// distinct, high-contrast signatures and tight boxes (the box is the extent of the lesion's drawn
// pixels):
//   Osteophytes          bright triangular spurs at vertebral corners (1-4 per event)
//   Disc space narrowing a disc space squeezed to a slit with bright sclerotic endplates
//   Surgical implant     saturated metal: two or three pedicle screws joined by a rod
//   Spondylolysthesis    a vertebra slipped forward over the one below (a step in the front line)
//   Vertebral collapse   a flattened, wedge-shaped, dense vertebra
//   Foraminal stenosis   a foramen filled by bright bony overgrowth
//   Other lesions        a round sclerotic lesion with a dark lytic ring
// Box sizes follow the release's median w x h ratios between classes, scaled so that the smallest
// lesions are about 8-10% of the image height. `size` is the exact height; width 0.62-0.85 of it.
//
// ---- style "realistic": a yardstick ------------------------------------------------------------
// A lateral lumbar radiograph at the release's scale (nominal size 2500: about 2,250-2,900 rows x
// 1,250-1,650 columns, 0.14 mm pixels): 9-10 vertebral bodies with concave waists, cortical rims and
// trabecular texture, disc spaces, pedicles, facets, laminae and spinous processes around keyhole
// foramina, soft tissue with bowel gas, ribs or iliac crests, a lead side marker, quantum noise.
// Normal anatomy varies (disc heights, body shapes, small unannotated corner lips), and lesions are
// drawn as the radiologic signs they are, at their real sizes (box percentiles close to the
// release's once classes are weighted as in the release) and with low contrast:
//   Osteophytes          a beak of bone growing out of a vertebral corner toward the disc
//   Disc space narrowing a disc space at 30-55% of its neighbours' height, sclerotic endplates,
//                        sometimes a vacuum (gas) cleft
//   Surgical implant     pedicle screws (threads, tulip heads) over 2-3 levels, a rod, sometimes
//                        an interbody cage with its metal markers
//   Spondylolysthesis    the column above a disc slipped forward by 12-30% of the body depth
//   Vertebral collapse   a wedge-compressed body, denser, with a depressed upper endplate
//   Foraminal stenosis   a keyhole foramen narrowed by bony overgrowth from the facet or endplate
//   Other lesions        a sclerotic or lytic focus in a body, or a Schmorl's node
// `size` is the nominal height (0: 2500); the rows of each image vary from 0.9 to 1.16 of it and
// every length scales with it, so a small `size` gives the same pictures, smaller (for tests).
//
// ---- both styles -------------------------------------------------------------------------------
// About half the images are normal. Normal/abnormal and the first lesion of an abnormal image are
// dealt from shuffled decks of 32 cards per split (16 normal; 4 Osteophytes and 2 of every other
// class as first lesions), so every class appears at least twice in each full deck: a split of
// >= 320 images holds >= 20 boxes of every class. Further lesions (0-2) are drawn with the release's
// class frequencies flattened by a power of 0.35 (Osteophytes stay the majority of boxes).
//
// DICOM: 16-bit, BitsStored 12, ~80% JPEG 2000 lossless, ~10% uncompressed, ~10% JPEG-LS;
// ~15% MONOCHROME1 (stored inverted, so after the reader's inversion bone is bright again); window
// tags on ~90%; Modality absent on ~70%; CR or DX-for-presentation SOP classes; rad1/rad2/rad3.
// Deterministic: every image is a pure function of (seed, index, slot, style, size), UIDs are derived
// from the seed, no clock is written, so the same seed gives the same bytes whatever the thread count.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/annotations.h"
#include "io/dicom_write.h"

namespace sx::io {

enum class SynthStyle { Classic, Realistic };
SynthStyle parse_synth_style(const std::string& s);  // "classic" | "realistic"; ValueError otherwise
const char* synth_style_name(SynthStyle s);
// The default `size` of a style: 512 (classic, exact rows), 2500 (realistic, nominal rows).
int synth_default_size(SynthStyle s);

struct SynthOptions {
  std::string out;            // release root (created)
  int images = 200;           // in all (train + test)
  uint64_t seed = 0;
  SynthStyle style = SynthStyle::Classic;
  int size = 0;               // 0: the style's default (see above)
  double test_fraction = 0.2; // by study (when test_images == 0)
  int test_images = 0;        // > 0: exactly this many of `images` form the test split (whole studies)
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

// Renders image `index` of a dataset with `seed` (pure function). `size`: see the styles above.
// `slot` is the image's position in the deal of normal/abnormal and first-lesion cards (its rank
// within its split in synthesize_dataset; -1: the index).
SynthImage render_synthetic(uint64_t seed, int64_t index, int size, double normal_fraction = 0.5,
                            SynthStyle style = SynthStyle::Classic, int64_t slot = -1);

struct SynthSummary {
  int64_t images = 0, train_images = 0, test_images = 0, normal_images = 0, boxes = 0, studies = 0;
  std::map<std::string, int64_t> boxes_per_class;
  std::map<std::string, int64_t> codecs;
  double seconds = 0;
};

// Writes the whole dataset. Throws sx::IOError on file errors.
SynthSummary synthesize_dataset(const SynthOptions& opt);

}  // namespace sx::io
