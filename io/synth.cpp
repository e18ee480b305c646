// Synthetic lateral spine radiographs in the VinDr-SpineXR release format (see synth.h): the public
// entry points and the dataset writer (studies, series, UIDs, the two splits, the CSVs).
//
// The images themselves: io/synth_classic.cpp and io/synth_realistic*.cpp draw the two styles with
// the kit of io/synth_shapes.h; io/synth_common.cpp deals the normal/abnormal cards and picks the
// DICOM attributes (io/synth_internal.h lists the pieces).
#include "io/synth.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>

#include "io/atomic_file.h"
#include "io/progress.h"
#include "io/synth_internal.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using synth_detail::Card;
using synth_detail::deal_card;
using synth_detail::render_classic;
using synth_detail::render_realistic;
using synth_detail::Rng;
using synth_detail::stream;

std::string hex_id(uint64_t a, uint64_t b) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(a), static_cast<unsigned long long>(b));
  return buf;
}

// A DICOM UID under the "2.25." (UUID-derived) root: digits only, < 64 characters.
std::string uid_from(uint64_t a, uint64_t b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "2.25.%llu%llu", static_cast<unsigned long long>(a >> 1),
                static_cast<unsigned long long>(b >> 4));
  return buf;
}


std::string fmt_coord(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

}  // namespace

SynthStyle parse_synth_style(const std::string& s) {
  if (s == "classic") return SynthStyle::Classic;
  if (s == "realistic") return SynthStyle::Realistic;
  SX_THROW(ValueError, "synth: --style must be classic or realistic, got '", s, "'");
}

const char* synth_style_name(SynthStyle s) { return s == SynthStyle::Realistic ? "realistic" : "classic"; }

int synth_default_size(SynthStyle s) { return s == SynthStyle::Realistic ? 2500 : 512; }

SynthImage render_synthetic(uint64_t seed, int64_t index, int size, double normal_fraction, SynthStyle style,
                            int64_t slot) {
  if (size == 0) size = synth_default_size(style);
  SX_CHECK(size >= 64 && size <= 8192, "synth: size must be in [64, 8192], got ", size);
  SX_CHECK(index >= 0, "synth: image index must be >= 0, got ", index);
  const Card card = deal_card(seed, slot < 0 ? index : slot, normal_fraction);
  return style == SynthStyle::Realistic ? render_realistic(seed, index, size, card)
                                        : render_classic(seed, index, size, card);
}

SynthSummary synthesize_dataset(const SynthOptions& opt) {
  SX_CHECK(!opt.out.empty(), "synth: --out is required");
  SX_CHECK(opt.images >= 1, "synth: --images must be >= 1, got ", opt.images);
  SX_CHECK(opt.test_fraction >= 0 && opt.test_fraction < 1, "synth: test fraction must be in [0, 1), got ", opt.test_fraction);
  SX_CHECK(opt.test_images >= 0 && opt.test_images < opt.images, "synth: --test-images must be in [0, --images), got ",
           opt.test_images, " of ", opt.images);
  SX_CHECK(opt.normal_fraction >= 0 && opt.normal_fraction <= 1, "synth: normal fraction must be in [0, 1], got ",
           opt.normal_fraction);
  auto t0 = std::chrono::steady_clock::now();
  make_dirs(opt.out);
  make_dirs(opt.out + "/annotations");
  make_dirs(opt.out + "/train_images");
  make_dirs(opt.out + "/test_images");

  // Studies, series and ids: decided up front (sequential, cheap), images rendered in parallel.
  // With test_images > 0 the train studies come first, then exactly test_images test images (the
  // last study of each split may lose its second image to the count); otherwise each study goes to
  // the test split with probability test_fraction.
  struct Item {
    std::string image_id, study_id, series_id, rad_id, study_uid, series_uid, sop_uid;
    bool test = false;
    int64_t slot = 0;  // rank within its split (test ranks offset), for the deal of cards
  };
  std::vector<Item> items;
  Rng L(stream(opt.seed, 3, 0));
  int64_t studies = 0, n_train = 0, n_test = 0;
  const int train_quota = opt.images - opt.test_images;
  constexpr int64_t kTestSlots = int64_t{1} << 40;
  while (static_cast<int>(items.size()) < opt.images) {
    ++studies;
    const double draw = L.u();
    const bool test = opt.test_images > 0 ? static_cast<int>(items.size()) >= train_quota : draw < opt.test_fraction;
    const int limit = opt.test_images > 0 && !test ? train_quota : opt.images;
    const std::string study_id = hex_id(L.bits(), L.bits()), study_uid = uid_from(L.bits(), L.bits());
    static const char* const kRads[3] = {"rad1", "rad2", "rad3"};
    const char* rad = kRads[L.randint(0, 3)];
    int n = 1 + (L.u() < 0.6);
    for (int k = 0; k < n && static_cast<int>(items.size()) < limit; ++k) {
      Item it;
      it.study_id = study_id;
      it.study_uid = study_uid;
      it.series_id = hex_id(L.bits(), L.bits());
      it.series_uid = uid_from(L.bits(), L.bits());
      it.image_id = hex_id(L.bits(), L.bits());
      it.sop_uid = uid_from(L.bits(), L.bits());
      it.rad_id = rad;
      it.test = test;
      it.slot = test ? kTestSlots + n_test++ : n_train++;
      items.push_back(it);
    }
  }

  const int N = static_cast<int>(items.size());
  std::vector<std::vector<Box>> boxes(N);
  std::vector<std::string> codecs(N);
  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = std::min(threads, N);
  std::atomic<int> next{0};
  std::mutex err_mu;
  std::string first_error;
  std::unique_ptr<ProgressBar> bar;
  if (opt.progress) bar.reset(new ProgressBar(N, "synth"));
  auto work = [&] {
    for (;;) {
      int i = next.fetch_add(1);
      if (i >= N) return;
      try {
        SynthImage im = render_synthetic(opt.seed, i, opt.size, opt.normal_fraction, opt.style, items[i].slot);
        im.spec.study_uid = items[i].study_uid;
        im.spec.series_uid = items[i].series_uid;
        im.spec.sop_uid = items[i].sop_uid;
        const std::string path = opt.out + (items[i].test ? "/test_images/" : "/train_images/") + items[i].image_id + ".dicom";
        write_dicom(path, im.stored.data(), im.spec);
        boxes[i] = im.boxes;
        codecs[i] = dicom_codec_name(im.spec.codec);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lk(err_mu);
        if (first_error.empty()) first_error = e.what();
        next = N;
        return;
      }
      if (bar) bar->update(1);
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (bar) bar->finish();
  if (!first_error.empty()) throw IOError("synth: " + first_error);

  SynthSummary sum;
  sum.studies = studies;
  const auto& names = vindr_detection_classes();
  for (int part = 0; part < 2; ++part) {
    std::ostringstream csv;
    csv << "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax\n";
    for (int i = 0; i < N; ++i) {
      const Item& it = items[i];
      if (it.test != (part == 1)) continue;
      const std::string pre = it.study_id + "," + it.series_id + "," + it.image_id + "," + it.rad_id + ",";
      if (boxes[i].empty()) {
        csv << pre << "No finding,,,,\n";
        ++sum.normal_images;
      }
      for (const Box& b : boxes[i]) {
        csv << pre << names[b.label] << "," << fmt_coord(b.x1) << "," << fmt_coord(b.y1) << "," << fmt_coord(b.x2) << ","
            << fmt_coord(b.y2) << "\n";
        ++sum.boxes_per_class[names[b.label]];
        ++sum.boxes;
      }
      ++(part ? sum.test_images : sum.train_images);
      ++sum.codecs[codecs[i]];
    }
    write_file_atomic(opt.out + (part ? "/annotations/test.csv" : "/annotations/train.csv"), csv.str());
  }
  sum.images = N;
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace sx::io
