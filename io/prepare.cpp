#include "io/prepare.h"

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "io/annotations.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/image_io.h"
#include "io/progress.h"
#include "io/transforms.h"
#include "tensor/errors.h"

namespace sx::io {

PreparedImage prepare_image(const std::string& path, int max_side, const WindowOptions& window, const DicomLimits& limits) {
  SX_CHECK(max_side > 0, "prepare: size must be positive, got ", max_side);
  DicomImage d = read_dicom_for_size(path, max_side, limits);
  PreparedImage p;
  p.orig_width = d.full_columns;
  p.orig_height = d.full_rows;
  p.photometric = d.info.photometric;
  p.reduce = d.reduce;
  const int dw = d.info.columns, dh = d.info.rows;  // decoded size (reduced for JPEG 2000)
  std::vector<float> v = window_image(d, window, &p.window);
  d.values = std::vector<float>();  // free early
  const int longest = std::max(p.orig_width, p.orig_height);
  const double s = std::min(1.0, static_cast<double>(max_side) / longest);
  p.width = std::max(1, static_cast<int>(std::lround(p.orig_width * s)));
  p.height = std::max(1, static_cast<int>(std::lround(p.orig_height * s)));
  std::vector<float> r;
  const float* src = v.data();
  if (p.width != dw || p.height != dh) {
    r.resize(static_cast<size_t>(p.width) * p.height);
    resize_image(v.data(), dw, dh, r.data(), p.width, p.height);
    src = r.data();
  }
  p.pixels.resize(static_cast<size_t>(p.width) * p.height);
  for (size_t i = 0; i < p.pixels.size(); ++i) {
    float x = src[i] < 0 ? 0.0f : (src[i] > 1 ? 1.0f : src[i]);
    p.pixels[i] = static_cast<uint16_t>(std::lround(x * 65535.0f));
  }
  return p;
}

namespace {

bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

const char* kHeader =
    "image_id,split,file,orig_width,orig_height,width,height,window_center,window_width,window_source,photometric,status";

struct Row {
  std::string image_id, split, file;
  int orig_w = 0, orig_h = 0, w = 0, h = 0;
  double wc = 0, ww = 0;
  std::string wsrc, photometric, status;
  std::string line() const {
    std::ostringstream os;
    os.precision(10);
    os << csv_escape(image_id) << "," << split << "," << csv_escape(file) << "," << orig_w << "," << orig_h << "," << w << ","
       << h << "," << wc << "," << ww << "," << csv_escape(wsrc) << "," << photometric << "," << csv_escape(status);
    return os.str();
  }
};

// Reads index or journal lines (a torn last line of a killed run is ignored).
void load_rows(const std::string& path, std::map<std::string, Row>& rows) {
  if (!is_file(path)) return;
  std::string text = read_file(path);
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (l.empty() || l.rfind("image_id,", 0) == 0) continue;
    auto f = split_csv_line(l);
    if (f.size() != 12) continue;
    Row r;
    r.image_id = f[0];
    r.split = f[1];
    r.file = f[2];
    try {
      r.orig_w = std::stoi(f[3]);
      r.orig_h = std::stoi(f[4]);
      r.w = std::stoi(f[5]);
      r.h = std::stoi(f[6]);
      r.wc = std::stod(f[7]);
      r.ww = std::stod(f[8]);
    } catch (const std::exception&) {
      continue;
    }
    r.wsrc = f[9];
    r.photometric = f[10];
    r.status = f[11];
    rows[r.split + "/" + r.image_id] = r;
  }
}

}  // namespace

PrepareSummary prepare_cache(const PrepareOptions& opt) {
  SX_CHECK(!opt.data.empty() && !opt.out.empty(), "prepare: --data and --out are required");
  SX_CHECK(opt.size > 0, "prepare: --size must be positive, got ", opt.size);
  auto t0 = std::chrono::steady_clock::now();
  make_dirs(opt.out);
  make_dirs(opt.out + "/images");
  make_dirs(opt.out + "/annotations");

  struct Job {
    std::string image_id, split, src;
  };
  std::vector<Job> jobs;
  PrepareSummary sum;
  std::mutex mu;
  std::vector<MissingImage> missing;
  std::vector<std::pair<std::string, int64_t>> listed;
  for (const std::string& split : opt.splits) {
    DatasetOptions dopt;
    dopt.split = split;
    dopt.skip_bad_rows = true;   // prepare is about files: CSV problems are the dataset's business
    dopt.allow_missing = true;   // counted and listed below, not one error each
    dopt.check_boxes = false;
    Dataset ds;
    try {
      ds = Dataset::open(opt.data, dopt);
    } catch (const IOError& e) {
      // A split that does not exist (e.g. no test.csv) is skipped with a note.
      sum.errors.push_back(split + ": " + e.what());
      continue;
    }
    if (ds.layout() == Layout::Cache) SX_THROW(ValueError, "prepare: ", opt.data, " is already a cache");
    make_dirs(opt.out + "/images/" + split);
    const std::string csv = ds.layout() == Layout::Release ? opt.data + "/annotations/" + split + ".csv"
                                                           : opt.data + "/annotations_" + split + ".csv";
    write_file_atomic(opt.out + "/annotations/" + split + ".csv", read_file(csv));
    missing.insert(missing.end(), ds.missing().begin(), ds.missing().end());
    listed.emplace_back(split, ds.listed());
    for (const Sample& s : ds.samples()) jobs.push_back({s.image_id, split, s.path});
  }
  sum.images = static_cast<int64_t>(jobs.size());

  // A partial download: the full list in CACHE/missing.txt, and nothing decoded unless allowed.
  const std::string missing_path = opt.out + "/missing.txt";
  if (missing.empty()) {
    std::remove(missing_path.c_str());
  } else {
    write_missing_list(missing_path, missing);
    sum.missing = static_cast<int64_t>(missing.size());
    sum.missing_summary = missing_images_summary(missing, listed);
    if (!opt.allow_missing)
      SX_THROW(IOError, opt.data, ": ", sum.missing_summary, "; full list in ", missing_path,
               "; nothing was decoded (--allow-missing prepares the ", jobs.size(), " present)");
  }

  const std::string index_path = opt.out + "/spinexr_cache.csv", journal_path = opt.out + "/spinexr_cache.journal";
  std::map<std::string, Row> rows;
  load_rows(index_path, rows);
  load_rows(journal_path, rows);

  std::vector<size_t> todo;
  for (size_t i = 0; i < jobs.size(); ++i) {
    auto it = rows.find(jobs[i].split + "/" + jobs[i].image_id);
    if (it != rows.end() && it->second.status == "ok" && is_file(opt.out + "/" + it->second.file)) ++sum.skipped;
    else todo.push_back(i);
  }

  std::FILE* journal = std::fopen(journal_path.c_str(), "ab");
  if (!journal) SX_THROW(IOError, "cannot open ", journal_path, ": ", std::strerror(errno));
  std::unique_ptr<ProgressBar> bar;
  if (opt.progress) bar.reset(new ProgressBar(static_cast<int64_t>(todo.size()), "prepare"));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (;;) {
      size_t k = next.fetch_add(1);
      if (k >= todo.size()) return;
      const Job& j = jobs[todo[k]];
      Row r;
      r.image_id = j.image_id;
      r.split = j.split;
      r.file = "images/" + j.split + "/" + j.image_id + ".png";
      try {
        PreparedImage p = prepare_image(j.src, opt.size, opt.window, opt.limits);
        write_png16(opt.out + "/" + r.file, p.pixels.data(), p.width, p.height);
        r.orig_w = p.orig_width;
        r.orig_h = p.orig_height;
        r.w = p.width;
        r.h = p.height;
        r.wc = p.window.center;
        r.ww = p.window.width;
        r.wsrc = p.window.source;
        r.photometric = p.photometric;
        r.status = "ok";
      } catch (const std::exception& e) {
        r.status = std::string("error: ") + e.what();
      }
      {
        std::lock_guard<std::mutex> lk(mu);
        const std::string l = r.line() + "\n";
        std::fwrite(l.data(), 1, l.size(), journal);
        std::fflush(journal);
        rows[r.split + "/" + r.image_id] = r;
        if (r.status == "ok") ++sum.written;
        else {
          ++sum.failed;
          sum.errors.push_back(j.image_id + ": " + r.status.substr(7));
        }
      }
      if (bar) bar->update(1, sum.failed ? "failed=" + std::to_string(sum.failed) : "");
    }
  };
  int threads = opt.threads > 0 ? opt.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(threads), std::max<size_t>(1, todo.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  if (bar) bar->finish();
  std::fclose(journal);

  std::string index = std::string(kHeader) + "\n";
  for (const auto& kv : rows) index += kv.second.line() + "\n";
  write_file_atomic(index_path, index);
  std::remove(journal_path.c_str());
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return sum;
}

}  // namespace sx::io
