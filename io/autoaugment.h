// AutoAugment for detection, policy v2 (Zoph et al. 2019, "Learning Data Augmentation Strategies
// for Object Detection"), as the VinDr-SpineXR authors trained their detectors with it.
//
// A policy is a list of sub-policies; each sub-policy is a list of (operation, probability,
// magnitude level 0..10). Per image one sub-policy is chosen uniformly and its operations are
// applied in order, each with its own probability. Policy v2 has 15 sub-policies of 3 operations.
//
// The images here are grey radiographs in [0, 1] (the reference works on 8-bit RGB: a value v here
// is 255 v there, so its thresholds and additions are divided by 255). How the colour operations
// read on a grey image (the reference's RGB copies of one grey plane give the same results):
//   Color       blends the image with its own grey version: on a grey image that is the image, so
//               the operation changes nothing (kept in the table so the draws match the policy).
//   Contrast    blends with a flat image at the mean grey: m + f (v - m).
//   Brightness  blends with black: f v.             Sharpness   blends with a 3x3 smoothed copy.
//   AutoContrast stretches [min, max] to [0, 1].     Equalize    PIL's histogram equalisation on
//   Solarize / SolarizeAdd invert / brighten the values above / below a threshold. 256 grey levels.
// Results are clipped to [0, 1]; the fill of emptied pixels is the reference's grey 128 (128/255).
//
// Boxes (xyxy, continuous pixel coordinates as in transforms.h):
//   Translate, Shear, Rotate move the pixels and the boxes the same way; a sheared or rotated box
//   becomes the axis-aligned box of its four transformed corners (as the reference does). Boxes are
//   then clipped to the image; a box wholly outside, or squeezed to zero width or height, is dropped
//   (the reference drops the first kind and widens the second to a sliver). A box keeps its label.
//   Cutout and the colour operations leave boxes alone; BBox_Cutout grey-fills a rectangle centred
//   inside one random box (up to 0.75 of that box's size) and leaves the boxes alone.
//   If an image had boxes and the sub-policy dropped all of them, the image and boxes are restored
//   (the reference's mapper then keeps the unaugmented image).
// Pixel magnitudes (Translate 250 px, Cutout 100 px at level 10) are the reference's, which it
// applied after Detectron2's resizing to a shortest side of 800: here they are scaled by
// pixel_scale (autoaugment_pixel_scale: shortest side / 800), so they keep their meaning at any size.
//
// Randomness comes only from the AugRng passed in: same seed, same output.
#pragma once
#include <string>
#include <vector>

#include "io/annotations.h"
#include "io/transforms.h"

namespace sx::io {

// The operations of policy v2, named as in the reference.
enum class AugOp {
  AutoContrast, Equalize, Solarize, SolarizeAdd, Color, Contrast, Brightness, Sharpness,
  Cutout, BBoxCutout, RotateBBox, TranslateYBBox, ShearXBBox, ShearYBBox,
};
const char* aug_op_name(AugOp op);

struct PolicyStep {
  AugOp op;
  double prob;  // probability of applying the operation
  int level;    // magnitude 0..10
};
using SubPolicy = std::vector<PolicyStep>;

// The reference's policy v2 table.
const std::vector<SubPolicy>& autoaugment_policy_v2();
const std::vector<SubPolicy>& autoaugment_policy(AutoAugmentPolicy p);  // throws for None

// shortest side / 800 (the reference's image scale for the pixel magnitudes).
double autoaugment_pixel_scale(int width, int height);

// ---- the operations with explicit arguments (what the levels map to) ----------------------------
namespace aa {
constexpr float kFill = 128.0f / 255.0f;  // the reference's grey for emptied pixels

void autocontrast(GreyF& img);
void equalize(GreyF& img);
void solarize(GreyF& img, float threshold);                     // v >= threshold -> 1 - v
void solarize_add(GreyF& img, float addition, float threshold);  // v < threshold -> min(1, v + addition)
void contrast(GreyF& img, float factor);
void brightness(GreyF& img, float factor);
void sharpness(GreyF& img, float factor);  // PIL blend factor: 1 unchanged, > 1 sharper, < 1 smoother
// Fills rows [cy - pad, cy + pad) x columns [cx - pad_x, cx + pad_x), clipped, with `fill`.
void fill_rect(GreyF& img, int cx, int cy, int pad_x, int pad_y, float fill);
// Moves the content by (dx, dy) pixels; emptied pixels get kFill. Boxes follow.
void translate(GreyF& img, std::vector<Box>& boxes, int dx, int dy);
// Rotates counter-clockwise (as displayed) by `degrees` about the image centre, nearest neighbour
// (PIL Image.rotate). Boxes become the box of their rotated corners.
void rotate(GreyF& img, std::vector<Box>& boxes, double degrees);
// x' = x - level * y (PIL affine (1, level, 0, 0, 1, 0)), bicubic. Boxes: the box of the sheared corners.
void shear_x(GreyF& img, std::vector<Box>& boxes, double level);
// y' = y - level * x (PIL affine (1, 0, 0, level, 1, 0)), bicubic.
void shear_y(GreyF& img, std::vector<Box>& boxes, double level);
// Clips boxes to the image and drops those left without area (see the box rules above).
void clip_boxes(std::vector<Box>& boxes, int width, int height);
}  // namespace aa

// Applies `op` at `level` unconditionally, drawing its random parts (sign, position) from rng.
void apply_aug_op(AugOp op, int level, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale = 1.0);

// Chooses one sub-policy of `p` uniformly and applies it. Returns its index (-1 for None).
int apply_autoaugment(AutoAugmentPolicy p, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale);
// Applies each step with its probability; restores the input if it had boxes and lost them all.
void apply_sub_policy(const SubPolicy& sp, GreyF& img, std::vector<Box>& boxes, AugRng& rng, double pixel_scale);

}  // namespace sx::io
