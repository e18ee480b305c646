// What both styles of the synthetic dataset (io/synth.h) share: the streams of randomness, the deal
// of normal/abnormal cards, the lesion classes of an abnormal image, and the DICOM attributes of a
// rendered image.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/synth_internal.h"

namespace sx::io::synth_detail {

uint64_t stream(uint64_t seed, uint64_t purpose, uint64_t index) {
  return sx::rng::mix64(sx::rng::mix64(seed ^ (purpose * 0x9e3779b97f4a7c15ULL)) + index * 0xd1b54a32d192ed03ULL);
}

// ---- which images are abnormal, and their lesions -----------------------------------------------

// Slots are dealt in decks of 32 shuffled cards (the deck's order is a pure function of the seed and
// the deck number): round(32 * normal_fraction) normal cards, the others abnormal with first
// lesions cycling through kPrimary. With the default half normal, each full deck holds 4 Osteophytes
// and 2 of every other class as first lesions, so class counts cannot fall far below their share
// by chance (independent draws would leave a 300-image test split with a handful of a rare class).
Card deal_card(uint64_t seed, int64_t slot, double normal_fraction) {
  constexpr int kDeck = 32;
  const uint64_t deck = static_cast<uint64_t>(slot) / kDeck;
  const int pos = static_cast<int>(static_cast<uint64_t>(slot) % kDeck);
  int perm[kDeck];
  for (int i = 0; i < kDeck; ++i) perm[i] = i;
  Rng D(stream(seed, 4, deck));
  for (int i = kDeck - 1; i > 0; --i) std::swap(perm[i], perm[D.randint(0, i + 1)]);
  const int n_normal = std::clamp(static_cast<int>(std::lround(kDeck * normal_fraction)), 0, kDeck);
  const int card = perm[pos];
  if (card < n_normal) return {};
  // Every class once in the first 7 abnormal cards (fewer abnormal cards still cover them all).
  static const int kPrimary[16] = {kOsteo, kImplant, kSpondy, kForaminal, kDsn,      kCollapse, kOther, kOsteo,
                                   kOsteo, kImplant, kSpondy, kForaminal, kDsn, kCollapse, kOther,    kOsteo};
  return {true, kPrimary[(card - n_normal) % 16]};
}

// The lesion classes of an abnormal image: the card's first lesion, then 0-2 more (classic) or 0-3
// more (realistic, where abnormal spines tend to show several signs) drawn with the release's box
// counts to the power 0.35, in class order (Osteophytes, Surgical implant,
// Spondylolysthesis, Foraminal stenosis, Disc space narrowing, Vertebral collapse, Other lesions).
// Only Osteophytes may repeat.
std::vector<int> choose_events(Rng& R, const Card& card, bool realistic) {
  static const double kWeights[kNumCls] = {27.1, 8.33, 7.20, 8.07, 10.9, 7.07, 8.48};
  std::vector<int> events;
  if (!card.abnormal) return events;
  events.push_back(card.primary);
  const int extra = realistic ? (R.u() < 0.75) + (R.u() < 0.4) + (R.u() < 0.15) : (R.u() < 0.55) + (R.u() < 0.25);
  double total = 0;
  for (double w : kWeights) total += w;
  for (int e = 0; e < extra; ++e) {
    double r = R.u() * total;
    int c = 0;
    while (c < kNumCls - 1 && r >= kWeights[c]) r -= kWeights[c++];
    if (c != kOsteo && std::find(events.begin(), events.end(), c) != events.end()) continue;
    events.push_back(c);
  }
  return events;
}

// ---- DICOM attributes ------------------------------------------------------------------------

void finish_dicom(Rng& R, SynthImage& out, double pixel_spacing) {
  DicomWriteSpec& sp = out.spec;
  sp.rows = out.rows;
  sp.columns = out.columns;
  sp.bits_allocated = 16;
  sp.bits_stored = 12;
  double cu = R.u();
  sp.codec = cu < 0.8 ? DicomCodec::Jpeg2000Lossless : (cu < 0.9 ? DicomCodec::ExplicitLE : DicomCodec::JpegLsLossless);
  const bool mono1 = R.u() < 0.15;
  sp.photometric = mono1 ? "MONOCHROME1" : "MONOCHROME2";
  sp.write_window = R.u() < 0.9;
  if (R.u() < 0.5) {
    sp.window_center = 2047.5;
    sp.window_width = 4095;
  } else {
    sp.window_center = std::round(R.u(1950, 2200));
    sp.window_width = std::round(R.u(3800, 4095));
  }
  // MONOCHROME1 stores 4095 - v: the mirrored window (centre c -> 4096 - c in the standard's
  // convention) shows the same picture.
  if (mono1) sp.window_center = 4096 - sp.window_center;
  sp.write_modality = R.u() < 0.3;
  sp.modality = "CR";
  sp.sop_class_uid = R.u() < 0.7 ? "1.2.840.10008.5.1.4.1.1.1" : "1.2.840.10008.5.1.4.1.1.1.1";
  sp.sex = R.u() < 0.5 ? "F" : "M";
  char age[16];
  std::snprintf(age, sizeof age, "%03dY", R.randint(25, 85));
  sp.age = age;
  sp.pixel_spacing = pixel_spacing;
  out.stored = out.display;
  if (mono1)
    for (auto& v : out.stored) v = static_cast<uint16_t>(4095 - v);
}

}  // namespace sx::io::synth_detail
