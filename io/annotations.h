// VinDr-SpineXR annotation CSVs and the lesion class map.
//
// The CSV is read by header name, never by position. Two headers are known:
//   release: study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax
//   short:   image_id,lesion_type,xmin,ymin,xmax,ymax,rad_id
// Required columns: image_id, lesion_type, xmin, ymin, xmax, ymax; study_id/series_id/rad_id are
// optional (a missing study_id falls back to the image_id, so a study split stays valid).
// A UTF-8 BOM, CRLF line ends, quoted fields ("a,b", "" for a quote) and blank lines are handled.
//
// One row is one box. A normal image has one row `No finding` with empty coordinates; an image
// never mixes `No finding` with lesions (such an image is a bad row). The same box may appear
// twice with two labels: both are kept.
//
// Bad rows -- missing columns, non-numeric or non-finite coordinates, xmin > xmax or ymin > ymax,
// negative coordinates, an unknown class, coordinates on a `No finding` row, a lesion row without
// coordinates -- are reported as "FILE:LINE: reason". Policy (decided here, used by the CLI):
// by default the first bad row stops the run (sx::IOError with that text), because a silently
// shrunken training set is worse than a stopped one; with `skip_bad_rows` each bad row is dropped,
// counted and kept in AnnotationTable::bad_rows so the caller can list them at the end.
// A box outside its image can only be checked once the image size is known: see
// check_boxes_in_image() (same policy; 1 px of slack, then clipped).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace sx::io {

// The 7 detection classes in the paper's (config) order.
const std::vector<std::string>& vindr_detection_classes();

// Maps lesion_type names onto detection class ids.
// lookup(): >= 0 a detection class, kNormal for `No finding`, kIgnore for a name that is dropped
// on purpose, kUnknown for a name not in the map. Names are compared case-insensitively with runs
// of spaces/underscores collapsed, so "Disc space narrowing" == "disc_space_narrowing".
class ClassMap {
 public:
  static constexpr int kNormal = -1, kIgnore = -2, kUnknown = -3;

  // The default: the 7 classes, both spellings of spondylolisthesis, all 13 names of the dataset
  // description (Enthesophytes, Sclerotic lesion, Subchondral sclerosis, Fracture, Foreign body,
  // Ankylosis -> Other lesions) and `No finding` as normal.
  static ClassMap vindr_default();
  // A small text file, one directive per line ('#' starts a comment):
  //   class NAME            append a detection class (ids in order of appearance)
  //   map ALIAS = NAME      ALIAS means class NAME
  //   normal ALIAS          ALIAS is the normal label (e.g. No finding)
  //   ignore ALIAS          rows with ALIAS are dropped silently
  // Throws sx::IOError "FILE:LINE: reason" on a malformed line.
  static ClassMap from_file(const std::string& path);
  static ClassMap parse(const std::string& text, const std::string& name = "<class map>");
  std::string to_text() const;  // the same format, round-trips through parse()

  int lookup(const std::string& name) const;
  int num_classes() const { return static_cast<int>(classes_.size()); }
  const std::vector<std::string>& class_names() const { return classes_; }
  const std::string& class_name(int id) const;

  void add_class(const std::string& name);
  void add_alias(const std::string& alias, int id);  // id >= 0, kNormal or kIgnore

 private:
  static std::string normalise(const std::string& s);
  std::vector<std::string> classes_;
  std::map<std::string, int> aliases_;          // normalised name -> id
  std::vector<std::pair<std::string, int>> alias_order_;  // as given, for to_text()
};

struct Box {
  float x1 = 0, y1 = 0, x2 = 0, y2 = 0;  // original pixel space, x right, y down
  int label = 0;                          // detection class id
  int line = 0;                           // CSV line (1-based, header is line 1)
};

struct ImageAnnotation {
  std::string image_id, study_id, series_id, rad_id;
  std::vector<Box> boxes;  // empty for a normal image
  bool has_normal_row = false;
  int first_line = 0;
  bool abnormal() const { return !boxes.empty(); }
};

struct BadRow {
  std::string file;
  int line = 0;
  std::string reason;
  std::string str() const { return file + ":" + std::to_string(line) + ": " + reason; }
};

struct AnnotationTable {
  std::vector<ImageAnnotation> images;  // in order of first appearance in the file
  std::vector<BadRow> bad_rows;         // only filled with skip_bad_rows
  int64_t rows = 0;                     // data rows read (bad ones included)
  std::string path;
  int find(const std::string& image_id) const;  // index into images, or -1
  int64_t num_boxes() const;
};

struct CsvOptions {
  bool skip_bad_rows = false;
};

AnnotationTable read_annotations(const std::string& path, const ClassMap& classes = ClassMap::vindr_default(),
                                 const CsvOptions& opts = {});
AnnotationTable parse_annotations(const std::string& text, const std::string& name,
                                  const ClassMap& classes = ClassMap::vindr_default(),
                                  const CsvOptions& opts = {});

// Checks the boxes of one image against its size (width x height). A box more than `slack` px
// outside is a bad row: throws sx::IOError "FILE:LINE: box ... outside the W x H image", or with
// skip_bad_rows drops it and appends to `bad`. Boxes within the slack are clipped to the image.
void check_boxes_in_image(ImageAnnotation& ann, int width, int height, const std::string& csv_path,
                          bool skip_bad_rows, std::vector<BadRow>* bad, float slack = 1.0f);

// RFC-4180-ish CSV splitting of one record; exposed for tests and other readers.
std::vector<std::string> split_csv_line(const std::string& line);
// Quotes a field when it holds a comma, quote or newline.
std::string csv_escape(const std::string& field);

}  // namespace sx::io
