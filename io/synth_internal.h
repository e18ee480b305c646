// What the files of the synthetic dataset (io/synth.h) share: the counter-based randomness, the
// lesion classes, the deal of normal/abnormal cards, and the stages each file provides
//
//   io/synth_common.cpp            the deal of cards, the lesion classes of an image, DICOM attributes
//   io/synth_classic.cpp           the classic style
//   io/synth_realistic.cpp         the realistic style: the column, its anatomy and its lesions
//   io/synth_realistic_scene.cpp   the realistic style: soft tissue, confounders, the exposure
//   io/synth.cpp                   the public entry points and the dataset writer
//
// Internal to io/synth*.cpp; the drawing kit is io/synth_shapes.h.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "io/synth.h"
#include "io/synth_shapes.h"
#include "tensor/random_math.h"

namespace sx::io::synth_detail {

// ---- randomness: counter-based, one stream per (seed, purpose, index) ---------------------------

struct Rng {
  uint64_t seed, c = 0;
  explicit Rng(uint64_t s) : seed(s) {}
  double u() { return sx::rng::uniform(seed, c++); }
  double u(double a, double b) { return a + (b - a) * u(); }
  int randint(int lo, int hi) { return lo + static_cast<int>(u() * (hi - lo)); }  // [lo, hi)
  double normal() {
    double a = std::max(u(), 1e-300), b = u();
    return std::sqrt(-2.0 * std::log(a)) * std::cos(6.283185307179586 * b);
  }
  uint64_t bits() { return sx::rng::bits(seed, c++); }
};

// The seed of one stream: a pure function of (seed, purpose, index). Purposes: 1 an image's scene,
// 2 its pixel noise, 3 the dataset's ids, 4 a deck of cards, 5 an image's textures.
uint64_t stream(uint64_t seed, uint64_t purpose, uint64_t index);

// ---- the scene --------------------------------------------------------------------------------

enum Cls { kOsteo = 0, kImplant, kSpondy, kForaminal, kDsn, kCollapse, kOther, kNumCls };

struct Lesion {
  int cls;
  BoxAcc acc;
};

// The lordotic tilt of the spine's centre line x(y) = x0 + amp * sin(freq * y + phase) at y.
inline float local_angle(float amp, float freq, float phase, float y) {
  return std::atan(amp * freq * std::cos(freq * y + phase));
}

// ---- which images are abnormal, and their lesions (io/synth_common.cpp) --------------------------

// One card of the stratified deal: normal, or abnormal with its first lesion's class.
struct Card {
  bool abnormal = false;
  int primary = -1;
};

// The card of deal slot `slot` (see synth_common.cpp).
Card deal_card(uint64_t seed, int64_t slot, double normal_fraction);

// The lesion classes of an abnormal image, first the card's (see synth_common.cpp).
std::vector<int> choose_events(Rng& R, const Card& card, bool realistic);

// The DICOM attributes of a rendered image (codec, photometric, window, ...), drawn from R.
void finish_dicom(Rng& R, SynthImage& out, double pixel_spacing);

// ---- the two styles --------------------------------------------------------------------------

SynthImage render_classic(uint64_t seed, int64_t index, int size, const Card& card);    // synth_classic.cpp
SynthImage render_realistic(uint64_t seed, int64_t index, int size, const Card& card);  // synth_realistic.cpp

// Stages of the realistic style (io/synth_realistic_scene.cpp), in the order it calls them; each
// draws from R in its turn. `u` is image pixels per release pixel.
// Soft tissue over the whole canvas; returns the patient's tissue density.
float draw_soft_tissue(Rng& R, Canvas& cv, uint64_t tex_seed, float u);
// Bowel gas, ribs, the iliac crest (on cv) and a lead marker (on the metal canvas mc); x0 is the
// column's mean x.
void draw_confounders(Rng& R, Canvas& cv, Canvas& mc, float x0, float u);
// Detector blur of both canvases, then out.rows/columns/display: quantum noise and quantisation.
void expose(Rng& R, uint64_t seed, int64_t index, Canvas& cv, Canvas& mc, SynthImage& out);

}  // namespace sx::io::synth_detail
