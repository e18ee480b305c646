#include "io/annotations.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "io/atomic_file.h"
#include "tensor/errors.h"

namespace sx::io {

const std::vector<std::string>& vindr_detection_classes() {
  static const std::vector<std::string> c = {"Osteophytes",        "Surgical implant",   "Spondylolysthesis",
                                             "Foraminal stenosis", "Disc space narrowing", "Vertebral collapse",
                                             "Other lesions"};
  return c;
}

// ---- class map --------------------------------------------------------------------------------

std::string ClassMap::normalise(const std::string& s) {
  std::string out;
  bool space = false;
  for (unsigned char ch : s) {
    if (std::isspace(ch) || ch == '_' || ch == '-') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(std::tolower(ch)));
  }
  return out;
}

void ClassMap::add_class(const std::string& name) {
  std::string key = normalise(name);
  SX_CHECK(!key.empty(), "ClassMap: empty class name");
  SX_CHECK(lookup(name) == kUnknown, "ClassMap: class '", name, "' is already defined");
  classes_.push_back(name);
  aliases_[key] = static_cast<int>(classes_.size()) - 1;
}

void ClassMap::add_alias(const std::string& alias, int id) {
  SX_CHECK(id == kNormal || id == kIgnore || (id >= 0 && id < num_classes()), "ClassMap: alias '", alias,
           "' maps to invalid id ", id);
  std::string key = normalise(alias);
  SX_CHECK(!key.empty(), "ClassMap: empty alias");
  aliases_[key] = id;
  alias_order_.push_back({alias, id});
}

int ClassMap::lookup(const std::string& name) const {
  auto it = aliases_.find(normalise(name));
  return it == aliases_.end() ? kUnknown : it->second;
}

const std::string& ClassMap::class_name(int id) const {
  SX_CHECK(id >= 0 && id < num_classes(), "ClassMap: class id ", id, " out of range [0, ", num_classes(), ")");
  return classes_[id];
}

ClassMap ClassMap::vindr_default() {
  ClassMap m;
  for (const auto& c : vindr_detection_classes()) m.add_class(c);
  const int other = m.lookup("Other lesions");
  m.add_alias("Spondylolisthesis", m.lookup("Spondylolysthesis"));
  for (const char* extra : {"Enthesophytes", "Sclerotic lesion", "Subchondral sclerosis", "Fracture", "Foreign body",
                            "Ankylosis"})
    m.add_alias(extra, other);
  m.add_alias("No finding", kNormal);
  return m;
}

ClassMap ClassMap::parse(const std::string& text, const std::string& name) {
  ClassMap m;
  std::istringstream in(text);
  std::string line;
  int ln = 0;
  auto trim = [](std::string s) {
    size_t a = s.find_first_not_of(" \t\r\n"), b = s.find_last_not_of(" \t\r\n");
    return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
  };
  while (std::getline(in, line)) {
    ++ln;
    auto hash = line.find('#');
    if (hash != std::string::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    auto sp = line.find_first_of(" \t");
    std::string kw = line.substr(0, sp), rest = sp == std::string::npos ? "" : trim(line.substr(sp));
    try {
      if (rest.empty()) SX_THROW(ValueError, "'", kw, "' needs a name");
      if (kw == "class") {
        m.add_class(rest);
      } else if (kw == "normal") {
        m.add_alias(rest, kNormal);
      } else if (kw == "ignore") {
        m.add_alias(rest, kIgnore);
      } else if (kw == "map") {
        auto eq = rest.find('=');
        if (eq == std::string::npos) SX_THROW(ValueError, "expected 'map ALIAS = CLASS'");
        std::string alias = trim(rest.substr(0, eq)), target = trim(rest.substr(eq + 1));
        int id = m.lookup(target);
        if (id == kUnknown) SX_THROW(ValueError, "class '", target, "' is not defined (define it with 'class' first)");
        m.add_alias(alias, id);
      } else {
        SX_THROW(ValueError, "unknown directive '", kw, "' (expected class, map, normal or ignore)");
      }
    } catch (const ValueError& e) {
      SX_THROW(IOError, name, ":", ln, ": ", e.what());
    }
  }
  if (m.num_classes() == 0) SX_THROW(IOError, name, ": the class map defines no class");
  return m;
}

ClassMap ClassMap::from_file(const std::string& path) { return parse(read_file(path, 1 << 20), path); }

std::string ClassMap::to_text() const {
  std::ostringstream os;
  os << "# spinexr class map: detection classes in id order, then aliases\n";
  for (const auto& c : classes_) os << "class " << c << "\n";
  for (const auto& a : alias_order_) {
    if (a.second == kNormal) os << "normal " << a.first << "\n";
    else if (a.second == kIgnore) os << "ignore " << a.first << "\n";
    else os << "map " << a.first << " = " << classes_[a.second] << "\n";
  }
  return os.str();
}

// ---- CSV --------------------------------------------------------------------------------------

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < line.size() && line[i + 1] == '"') {
          cur.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        cur.push_back(c);
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

std::string csv_escape(const std::string& f) {
  if (f.find_first_of(",\"\n\r") == std::string::npos) return f;
  std::string out = "\"";
  for (char c : f) {
    if (c == '"') out += "\"\"";
    else out.push_back(c);
  }
  return out + "\"";
}

int AnnotationTable::find(const std::string& image_id) const {
  for (size_t i = 0; i < images.size(); ++i)
    if (images[i].image_id == image_id) return static_cast<int>(i);
  return -1;
}

int64_t AnnotationTable::num_boxes() const {
  int64_t n = 0;
  for (const auto& im : images) n += static_cast<int64_t>(im.boxes.size());
  return n;
}

namespace {

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

// Splits text into records, honouring quotes that span line breaks. Each record carries the
// physical line number where it starts.
std::vector<std::pair<int, std::string>> csv_records(const std::string& text) {
  std::vector<std::pair<int, std::string>> recs;
  std::string cur;
  bool quoted = false;
  int line = 1, start = 1;
  for (char c : text) {
    if (c == '"') quoted = !quoted;  // "" toggles twice: fine for record splitting
    if (c == '\n') {
      if (quoted) {
        cur.push_back(c);
        ++line;
        continue;
      }
      recs.push_back({start, cur});
      cur.clear();
      start = ++line;
      continue;
    }
    cur.push_back(c);
  }
  if (!cur.empty()) recs.push_back({start, cur});
  return recs;
}

bool parse_float(const std::string& s, float* out) {
  std::string t = trim(s);
  if (t.empty()) return false;
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size() || errno == ERANGE) return false;
  if (!std::isfinite(v) || std::fabs(v) > 1e9) return false;
  *out = static_cast<float>(v);
  return true;
}

}  // namespace

AnnotationTable parse_annotations(const std::string& text_in, const std::string& name, const ClassMap& classes,
                                  const CsvOptions& opts) {
  std::string text = text_in;
  if (text.size() >= 3 && static_cast<unsigned char>(text[0]) == 0xEF && static_cast<unsigned char>(text[1]) == 0xBB &&
      static_cast<unsigned char>(text[2]) == 0xBF)
    text = text.substr(3);
  AnnotationTable t;
  t.path = name;
  auto recs = csv_records(text);
  size_t r = 0;
  while (r < recs.size() && trim(recs[r].second).empty()) ++r;
  if (r == recs.size()) SX_THROW(IOError, name, ": empty annotation file (no header)");
  std::vector<std::string> header = split_csv_line(recs[r].second);
  std::map<std::string, int> col;
  for (size_t i = 0; i < header.size(); ++i) col[trim(header[i])] = static_cast<int>(i);
  for (const char* need : {"image_id", "lesion_type", "xmin", "ymin", "xmax", "ymax"})
    if (!col.count(need))
      SX_THROW(IOError, name, ":", recs[r].first, ": header has no '", need, "' column (got '", recs[r].second,
               "')");
  auto idx = [&](const char* k) { return col.count(k) ? col[k] : -1; };
  const int c_img = idx("image_id"), c_les = idx("lesion_type"), c_x1 = idx("xmin"), c_y1 = idx("ymin"),
            c_x2 = idx("xmax"), c_y2 = idx("ymax"), c_study = idx("study_id"), c_series = idx("series_id"),
            c_rad = idx("rad_id");
  const int ncols = static_cast<int>(header.size());
  std::map<std::string, int> where;  // image_id -> index

  auto bad = [&](int line, const std::string& why) {
    BadRow b{name, line, why};
    if (!opts.skip_bad_rows) throw IOError(b.str());
    t.bad_rows.push_back(b);
  };

  for (++r; r < recs.size(); ++r) {
    const int line = recs[r].first;
    const std::string& rec = recs[r].second;
    if (trim(rec).empty() || trim(rec) == "\r") continue;
    ++t.rows;
    std::vector<std::string> f = split_csv_line(rec);
    if (static_cast<int>(f.size()) < ncols) {
      bad(line, "expected " + std::to_string(ncols) + " columns, got " + std::to_string(f.size()));
      continue;
    }
    if (static_cast<int>(f.size()) > ncols) {
      bad(line, "expected " + std::to_string(ncols) + " columns, got " + std::to_string(f.size()));
      continue;
    }
    std::string image_id = trim(f[c_img]), lesion = trim(f[c_les]);
    if (image_id.empty()) {
      bad(line, "empty image_id");
      continue;
    }
    int cls = classes.lookup(lesion);
    if (cls == ClassMap::kUnknown) {
      bad(line, "unknown lesion_type '" + lesion + "'");
      continue;
    }
    const std::string sx1 = trim(f[c_x1]), sy1 = trim(f[c_y1]), sx2 = trim(f[c_x2]), sy2 = trim(f[c_y2]);
    const bool no_coords = sx1.empty() && sy1.empty() && sx2.empty() && sy2.empty();
    Box b;
    b.line = line;
    if (cls == ClassMap::kNormal) {
      if (!no_coords) {
        bad(line, "'" + lesion + "' row must have empty coordinates");
        continue;
      }
    } else if (cls >= 0) {
      if (no_coords) {
        bad(line, "lesion '" + lesion + "' has no coordinates");
        continue;
      }
      const std::string* raw[4] = {&sx1, &sy1, &sx2, &sy2};
      float* dst[4] = {&b.x1, &b.y1, &b.x2, &b.y2};
      const char* nm[4] = {"xmin", "ymin", "xmax", "ymax"};
      bool ok = true;
      for (int k = 0; k < 4 && ok; ++k)
        if (!parse_float(*raw[k], dst[k])) {
          bad(line, std::string(nm[k]) + " '" + *raw[k] + "' is not a finite number");
          ok = false;
        }
      if (!ok) continue;
      if (b.x1 > b.x2 || b.y1 > b.y2) {
        std::ostringstream os;
        os << "xmin > xmax or ymin > ymax (" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2 << ")";
        bad(line, os.str());
        continue;
      }
      if (b.x1 < -1.0f || b.y1 < -1.0f) {
        std::ostringstream os;
        os << "box (" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2 << ") is outside the image";
        bad(line, os.str());
        continue;
      }
      b.label = cls;
    }
    auto it = where.find(image_id);
    int k;
    if (it == where.end()) {
      k = static_cast<int>(t.images.size());
      where[image_id] = k;
      ImageAnnotation a;
      a.image_id = image_id;
      a.study_id = c_study >= 0 ? trim(f[c_study]) : "";
      if (a.study_id.empty()) a.study_id = image_id;
      a.series_id = c_series >= 0 ? trim(f[c_series]) : "";
      a.rad_id = c_rad >= 0 ? trim(f[c_rad]) : "";
      a.first_line = line;
      t.images.push_back(a);
    } else {
      k = it->second;
    }
    ImageAnnotation& a = t.images[k];
    if (cls == ClassMap::kNormal) {
      if (!a.boxes.empty()) {
        bad(line, "image " + image_id + " mixes '" + lesion + "' with lesions");
        continue;
      }
      a.has_normal_row = true;
    } else if (cls >= 0) {
      if (a.has_normal_row) {
        bad(line, "image " + image_id + " mixes lesions with a normal row");
        continue;
      }
      a.boxes.push_back(b);
    }
    // kIgnore: the image is known (it stays in the set), the row adds nothing.
  }
  return t;
}

AnnotationTable read_annotations(const std::string& path, const ClassMap& classes, const CsvOptions& opts) {
  return parse_annotations(read_file(path, uint64_t(1) << 30), path, classes, opts);
}

void check_boxes_in_image(ImageAnnotation& ann, int width, int height, const std::string& csv_path,
                          bool skip_bad_rows, std::vector<BadRow>* bad, float slack) {
  std::vector<Box> kept;
  kept.reserve(ann.boxes.size());
  for (const Box& b : ann.boxes) {
    if (b.x1 < -slack || b.y1 < -slack || b.x2 > width + slack || b.y2 > height + slack) {
      std::ostringstream os;
      os << "box (" << b.x1 << ", " << b.y1 << ", " << b.x2 << ", " << b.y2 << ") of image " << ann.image_id
         << " is outside the " << width << " x " << height << " image";
      BadRow r{csv_path, b.line, os.str()};
      if (!skip_bad_rows) throw IOError(r.str());
      if (bad) bad->push_back(r);
      continue;
    }
    Box c = b;
    c.x1 = std::min(std::max(c.x1, 0.0f), static_cast<float>(width));
    c.x2 = std::min(std::max(c.x2, 0.0f), static_cast<float>(width));
    c.y1 = std::min(std::max(c.y1, 0.0f), static_cast<float>(height));
    c.y2 = std::min(std::max(c.y2, 0.0f), static_cast<float>(height));
    kept.push_back(c);
  }
  ann.boxes.swap(kept);
}

}  // namespace sx::io
