// Data IO throughput: DICOM decode (JPEG 2000 lossless, ~2949 x 1470, 12-bit), decode + window +
// resize to 512 (the `prepare` path) on one thread and on all cores, `prepare` end to end, and the
// loader at 512 and 1024 px. Counters are images/s (items_per_second).
//
// The input is written once into a temporary folder by the synthetic generator (so no dataset is
// needed). For the pydicom (GDCM handler) + NumPy baseline on the very same file, run
//   SX_BENCH_KEEP=1 ./bench_io --benchmark_filter=DecodeJ2K   (prints the file's path)
//   /usr/bin/python3 scripts/fixtures/io_bench_pydicom.py FILE
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "io/dataset.h"
#include "io/dicom.h"
#include "io/dicom_write.h"
#include "io/prepare.h"
#include "io/synth.h"

namespace {

// The J2K file is written on first use; the synthetic release and its cache (for prepare and the
// loader) only when one of those benchmarks runs, so --benchmark_filter=DecodeResize512 starts fast.
struct Fixture {
  std::string dir, big, synth, cache;
  Fixture() {
    char tmpl[] = "/tmp/sx_bench_io_XXXXXX";
    dir = ::mkdtemp(tmpl);
    // One release-like image: 2949 rows x 1470 columns, 12-bit, JPEG 2000 lossless.
    sx::io::SynthImage im = sx::io::render_synthetic(1, 0, 2949);
    const int cols = std::min(1470, im.columns);
    std::vector<uint16_t> px(static_cast<size_t>(im.rows) * cols);
    for (int y = 0; y < im.rows; ++y)
      for (int x = 0; x < cols; ++x) px[static_cast<size_t>(y) * cols + x] = im.stored[static_cast<size_t>(y) * im.columns + x];
    im.spec.columns = cols;
    im.spec.codec = sx::io::DicomCodec::Jpeg2000Lossless;
    im.spec.study_uid = "1.2.3";
    im.spec.series_uid = "1.2.3.4";
    im.spec.sop_uid = "1.2.3.4.5";
    big = dir + "/big.dicom";
    sx::io::write_dicom(big, px.data(), im.spec);
    if (std::getenv("SX_BENCH_KEEP")) std::fprintf(stderr, "bench_io: J2K test file %s\n", big.c_str());
  }
  // A small synthetic release (1024 px) and its cache at 1024, for prepare and the loader.
  void make_release() {
    if (!synth.empty()) return;
    sx::io::SynthOptions so;
    so.out = dir + "/vindr";
    so.images = 24;
    so.size = 1024;
    so.seed = 3;
    so.progress = false;
    sx::io::synthesize_dataset(so);
    synth = so.out;
    sx::io::PrepareOptions po;
    po.data = synth;
    po.out = dir + "/cache1024";
    po.size = 1024;
    po.progress = false;
    sx::io::prepare_cache(po);
    cache = po.out;
  }
  ~Fixture() {
    if (!std::getenv("SX_BENCH_KEEP")) std::system(("rm -rf '" + dir + "'").c_str());
  }
};

Fixture& fx() {
  static Fixture f;
  return f;
}
Fixture& fx_release() {
  fx().make_release();
  return fx();
}

void BM_DecodeJ2K(benchmark::State& st) {
  const std::string p = fx().big;
  for (auto _ : st) {
    sx::io::DicomImage img = sx::io::read_dicom(p);
    benchmark::DoNotOptimize(img.values.data());
  }
  st.SetItemsProcessed(st.iterations());
  st.SetLabel("2949x1470 12-bit J2K lossless, 1 thread");
}
BENCHMARK(BM_DecodeJ2K)->Unit(benchmark::kMillisecond)->UseRealTime();

// Decode + window + area resize to 512 (what `prepare --size 512` does per image), on `threads`
// threads each working on its own image.
void BM_DecodeResize512(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  const std::string p = fx().big;
  for (auto _ : st) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&] {
        sx::io::PreparedImage im = sx::io::prepare_image(p, 512);
        benchmark::DoNotOptimize(im.pixels.data());
      });
    for (auto& t : pool) t.join();
  }
  st.SetItemsProcessed(st.iterations() * threads);
  st.SetLabel(std::to_string(threads) + " thread(s)");
}
BENCHMARK(BM_DecodeResize512)->Arg(1)->Arg(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())))
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Prepare(benchmark::State& st) {
  fx_release();  // build the inputs outside the timed loop
  int64_t n = 0;
  int run = 0;
  for (auto _ : st) {
    sx::io::PrepareOptions po;
    po.data = fx().synth;
    po.out = fx().dir + "/prep" + std::to_string(run++);
    po.size = 512;
    po.progress = false;
    sx::io::PrepareSummary s = sx::io::prepare_cache(po);
    n += s.written;
  }
  st.SetItemsProcessed(n);
  st.SetLabel("1024 px synthetic DICOMs -> 512 px cache, all cores");
}
BENCHMARK(BM_Prepare)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

void BM_Loader(benchmark::State& st) {
  const int size = static_cast<int>(st.range(0));
  sx::io::Dataset ds = sx::io::Dataset::open(fx_release().cache);
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  sx::io::LoaderOptions lo;
  lo.batch_size = 8;
  lo.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  lo.transform.size = size;
  lo.transform.hflip_prob = 0.5;
  lo.transform.channels = 3;
  sx::io::DataLoader dl(ds, pool, lo);
  int64_t n = 0, epoch = 0;
  for (auto _ : st) {
    dl.start_epoch(epoch++);
    sx::io::Batch b;
    while (dl.next(b)) n += b.images.size(0);
  }
  st.SetItemsProcessed(n);
  st.SetLabel("cache (1024 px 16-bit PNG) -> " + std::to_string(size) + " px, 3 channels, batch 8");
}
BENCHMARK(BM_Loader)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
