// Box-aware image transforms for grey radiographs.
//
// Coordinates: a pixel (i, j) covers [j, j+1) x [i, i+1); boxes are xyxy in these continuous pixel
// coordinates. Resizing by a factor s maps a point x to x * s (the half-pixel convention of
// OpenCV / torch align_corners=False), so a box scales exactly by s. A horizontal flip of an image of
// width W maps [x1, x2] to [W - x2, W - x1]. Padding adds pixels at the right and bottom only, so it
// never moves a box.
//
// Pipeline of apply_transforms (augmentations only when an Rng is given):
//   resize (longest or shortest side to `size`, aspect kept; times a random scale when asked)
//   -> horizontal flip (p = hflip_prob) -> an AutoAugment sub-policy (io/autoaugment.h)
//   -> brightness / contrast / gamma -> pad to a multiple of pad_multiple (with 0 = air, before
//   normalisation) -> the loader normalises ((v - mean) / std) and repeats the grey plane to `channels`.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/annotations.h"

namespace sx::io {

// A float grey image, values nominally in [0, 1], row-major.
struct GreyF {
  int width = 0, height = 0;
  std::vector<float> px;
  GreyF() = default;
  GreyF(int w, int h, float v = 0.0f) : width(w), height(h), px(static_cast<size_t>(w) * h, v) {}
  float at(int x, int y) const { return px[static_cast<size_t>(y) * width + x]; }
};

// Separable resampling to new_w x new_h. Shrinking uses area weights (each output pixel is the
// exact average of the input area it covers, like cv2.INTER_AREA: no aliasing); enlarging uses
// linear interpolation with clamped edges. Throws ValueError on empty sizes.
GreyF resize_image(const GreyF& src, int new_w, int new_h);
void resize_image(const float* src, int w, int h, float* dst, int new_w, int new_h);

enum class ResizeMode { Longest, Shortest };

// AutoAugment-for-detection policies (io/autoaugment.h).
enum class AutoAugmentPolicy { None, V2 };
AutoAugmentPolicy parse_autoaugment_policy(const std::string& s);  // "none" | "v2"
const char* autoaugment_policy_name(AutoAugmentPolicy p);
ResizeMode parse_resize_mode(const std::string& s);  // "longest" | "shortest"

struct TransformOptions {
  int size = 512;                         // target length of the longest (or shortest) side
  ResizeMode mode = ResizeMode::Longest;
  int max_size = 0;                       // Shortest mode: cap on the longest side (0: none)
  int pad_multiple = 32;                  // pad width and height up to a multiple of this (1: none)
  bool pad_square = true;                 // Longest mode: pad to size x size (rounded to pad_multiple)
  // Augmentation (used only when an Rng is passed):
  double hflip_prob = 0.0;
  double scale_min = 1.0, scale_max = 1.0;  // random factor on `size`
  double brightness = 0.0;                // add U(-b, b)
  double contrast = 0.0;                  // (v - 0.5) * U(1 - c, 1 + c) + 0.5
  double gamma = 0.0;                     // v ^ exp(U(-g, g))
  AutoAugmentPolicy autoaugment = AutoAugmentPolicy::None;  // after resize and flip, as the reference
  // Output (used by the loader):
  int channels = 1;                       // grey repeated to 1 or 3 channels
  float mean = 0.5f, std = 0.25f;         // normalisation of the [0, 1] values
};

// A small deterministic RNG for augmentation (counter-based: same seed, same draws).
struct AugRng {
  uint64_t seed, counter = 0;
  explicit AugRng(uint64_t s) : seed(s) {}
  double uniform();                          // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
};

struct Transformed {
  GreyF image;               // padded
  std::vector<Box> boxes;    // in `image` pixels
  float scale = 1.0f;        // nominal resize factor (with the random scale)
  float scale_x = 1.0f, scale_y = 1.0f;  // exact factors after rounding: resized / input size
  int resized_width = 0, resized_height = 0;  // before padding
  bool flipped = false;
};

// Scale for resizing w x h under the options (without random scale).
float resize_scale(int w, int h, const TransformOptions& opt);

// The geometry apply_transforms gives a w x h image resized by s (resize_scale, times the random
// factor when augmenting): the rounded size, the exact factors, and the padded size. Boxes scale by
// (scale_x, scale_y). Exposed so that geometry-only tools (anchor coverage) follow the loader exactly.
struct ResizedGeometry {
  int width = 0, height = 0;              // after resizing, before padding
  float scale_x = 1.0f, scale_y = 1.0f;   // width / w, height / h
  int padded_width = 0, padded_height = 0;
};
ResizedGeometry resized_geometry(int w, int h, float s, const TransformOptions& opt);

Transformed apply_transforms(const GreyF& img, const std::vector<Box>& boxes, const TransformOptions& opt,
                             AugRng* rng = nullptr);

}  // namespace sx::io
