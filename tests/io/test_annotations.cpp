// Annotation CSVs (both headers, BOM, CRLF, quotes, bad rows) and the class map.
#include <gtest/gtest.h>

#include "io/annotations.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

const char* kHeader = "study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax\n";

TEST(ClassMapTest, DefaultHasThePaperOrderAndAllNames) {
  ClassMap m = ClassMap::vindr_default();
  ASSERT_EQ(m.num_classes(), 7);
  const char* order[] = {"Osteophytes", "Surgical implant", "Spondylolysthesis", "Foraminal stenosis",
                         "Disc space narrowing", "Vertebral collapse", "Other lesions"};
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(m.class_name(i), order[i]);
    EXPECT_EQ(m.lookup(order[i]), i);
  }
  EXPECT_EQ(m.lookup("Spondylolisthesis"), 2);
  EXPECT_EQ(m.lookup("spondylolysthesis"), 2);
  EXPECT_EQ(m.lookup("disc_space  narrowing"), 4);
  for (const char* extra : {"Enthesophytes", "Sclerotic lesion", "Subchondral sclerosis", "Fracture", "Foreign body", "Ankylosis"})
    EXPECT_EQ(m.lookup(extra), 6) << extra;
  EXPECT_EQ(m.lookup("No finding"), ClassMap::kNormal);
  EXPECT_EQ(m.lookup("Banana"), ClassMap::kUnknown);
  EXPECT_THROW(m.class_name(7), ValueError);
}

TEST(ClassMapTest, TextFileRoundTripAndErrors) {
  ClassMap m = ClassMap::parse(
      "# two classes\nclass Osteophytes\nclass Other\nmap Fracture = Other\nnormal No finding\nignore Ankylosis\n", "cm.txt");
  EXPECT_EQ(m.num_classes(), 2);
  EXPECT_EQ(m.lookup("fracture"), 1);
  EXPECT_EQ(m.lookup("Ankylosis"), ClassMap::kIgnore);
  ClassMap again = ClassMap::parse(m.to_text());
  EXPECT_EQ(again.to_text(), m.to_text());
  EXPECT_EQ(ClassMap::parse(ClassMap::vindr_default().to_text()).lookup("Foreign body"), 6);
  try {
    ClassMap::parse("class A\nmap B = C\n", "cm.txt");
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("cm.txt:2:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ClassMap::parse("klass A\n", "x"), IOError);
  EXPECT_THROW(ClassMap::parse("# nothing\n", "x"), IOError);
  test::TempDir dir;
  test::spit(dir / "m.txt", m.to_text());
  EXPECT_EQ(ClassMap::from_file(dir / "m.txt").num_classes(), 2);
}

TEST(Csv, ReleaseHeaderNormalAndLesions) {
  std::string csv = std::string(kHeader) +
                    "s1,se1,img1,rad1,No finding,,,,\n"
                    "s2,se2,img2,rad2,Osteophytes,10.5,20,30,40.25\n"
                    "s2,se2,img2,rad2,Spondylolisthesis,1,2,3,4\n"
                    "s2,se2,img2,rad2,Osteophytes,10.5,20,30,40.25\n"  // same box twice: kept
                    "s2,se3,img3,rad2,Fracture,5,5,6,6\n";
  AnnotationTable t = parse_annotations(csv, "train.csv");
  ASSERT_EQ(t.images.size(), 3u);
  EXPECT_EQ(t.rows, 5);
  EXPECT_FALSE(t.images[0].abnormal());
  EXPECT_TRUE(t.images[0].has_normal_row);
  EXPECT_EQ(t.images[0].study_id, "s1");
  ASSERT_EQ(t.images[1].boxes.size(), 3u);
  EXPECT_FLOAT_EQ(t.images[1].boxes[0].x1, 10.5f);
  EXPECT_FLOAT_EQ(t.images[1].boxes[0].y2, 40.25f);
  EXPECT_EQ(t.images[1].boxes[1].label, 2);
  EXPECT_EQ(t.images[1].boxes[1].line, 4);
  EXPECT_EQ(t.images[2].boxes[0].label, 6);
  EXPECT_EQ(t.images[2].series_id, "se3");
  EXPECT_EQ(t.num_boxes(), 4);
  EXPECT_EQ(t.find("img3"), 2);
  EXPECT_EQ(t.find("nope"), -1);
}

TEST(Csv, ShortHeaderBomCrlfAndQuotes) {
  std::string csv =
      "\xEF\xBB\xBFimage_id,lesion_type,xmin,ymin,xmax,ymax,rad_id\r\n"
      "a,\"Disc space narrowing\",1,2,3,4,rad3\r\n"
      "\r\n"
      "\"b\",No finding,,,,,\"rad,1\"\r\n"
      "c,\"Other \"\"odd\"\" name\",1,1,2,2,rad1\r\n";
  ClassMap m = ClassMap::vindr_default();
  m.add_alias("Other \"odd\" name", 6);
  AnnotationTable t = parse_annotations(csv, "short.csv", m);
  ASSERT_EQ(t.images.size(), 3u);
  EXPECT_EQ(t.images[0].image_id, "a");
  EXPECT_EQ(t.images[0].study_id, "a");  // no study_id column: the image is its own study
  EXPECT_EQ(t.images[0].rad_id, "rad3");
  EXPECT_EQ(t.images[0].boxes[0].label, 4);
  EXPECT_EQ(t.images[1].rad_id, "rad,1");
  EXPECT_EQ(t.images[2].boxes[0].label, 6);
  EXPECT_EQ(split_csv_line("a,\"b,c\",\"d\"\"e\",").size(), 4u);
  EXPECT_EQ(split_csv_line("a,\"b,c\",\"d\"\"e\",")[2], "d\"e");
  EXPECT_EQ(csv_escape("x,y"), "\"x,y\"");
  EXPECT_EQ(csv_escape("plain"), "plain");
}

struct BadCase {
  const char* row;
  const char* reason;
};

TEST(Csv, EveryBadRowNamesFileLineAndReason) {
  const BadCase cases[] = {
      {"s,se,i,r,Osteophytes,1,2,3\n", "expected 9 columns, got 8"},
      {"s,se,i,r,Osteophytes,1,2,3,4,5\n", "expected 9 columns, got 10"},
      {"s,se,i,r,Osteophytes,abc,2,3,4\n", "xmin 'abc' is not a finite number"},
      {"s,se,i,r,Osteophytes,1,nan,3,4\n", "ymin 'nan' is not a finite number"},
      {"s,se,i,r,Osteophytes,1,2,inf,4\n", "xmax 'inf' is not a finite number"},
      {"s,se,i,r,Osteophytes,1,2,3,\n", "ymax '' is not a finite number"},
      {"s,se,i,r,Osteophytes,5,2,3,4\n", "xmin > xmax"},
      {"s,se,i,r,Osteophytes,1,9,3,4\n", "xmin > xmax or ymin > ymax"},
      {"s,se,i,r,Osteophytes,-50,2,3,4\n", "outside the image"},
      {"s,se,i,r,Banana,1,2,3,4\n", "unknown lesion_type 'Banana'"},
      {"s,se,i,r,No finding,1,2,3,4\n", "must have empty coordinates"},
      {"s,se,i,r,Osteophytes,,,,\n", "has no coordinates"},
      {"s,se,,r,Osteophytes,1,2,3,4\n", "empty image_id"},
  };
  for (const BadCase& c : cases) {
    std::string csv = std::string(kHeader) + "s0,se0,ok,rad1,No finding,,,,\n" + c.row;
    try {
      parse_annotations(csv, "bad.csv");
      ADD_FAILURE() << "accepted: " << c.row;
    } catch (const IOError& e) {
      std::string m = e.what();
      EXPECT_EQ(m.rfind("bad.csv:3: ", 0), 0u) << m;
      EXPECT_NE(m.find(c.reason), std::string::npos) << m;
    }
    // Skip mode: the row is dropped, counted and listed.
    CsvOptions o;
    o.skip_bad_rows = true;
    AnnotationTable t = parse_annotations(csv, "bad.csv", ClassMap::vindr_default(), o);
    ASSERT_EQ(t.bad_rows.size(), 1u) << c.row;
    EXPECT_EQ(t.bad_rows[0].line, 3);
    EXPECT_EQ(t.images[0].image_id, "ok");
  }
}

TEST(Csv, MixingNoFindingWithLesionsIsBad) {
  std::string csv = std::string(kHeader) + "s,se,i,r,Osteophytes,1,2,3,4\ns,se,i,r,No finding,,,,\n";
  EXPECT_THROW(parse_annotations(csv, "x.csv"), IOError);
  std::string csv2 = std::string(kHeader) + "s,se,i,r,No finding,,,,\ns,se,i,r,Osteophytes,1,2,3,4\n";
  EXPECT_THROW(parse_annotations(csv2, "x.csv"), IOError);
  EXPECT_THROW(parse_annotations("image_id,lesion_type,xmin\n", "h.csv"), IOError);  // missing columns
  EXPECT_THROW(parse_annotations("", "e.csv"), IOError);
  EXPECT_THROW(read_annotations("/nonexistent/file.csv"), IOError);
}

TEST(Csv, BoxesOutsideTheImage) {
  ImageAnnotation a;
  a.image_id = "i";
  a.boxes = {Box{10, 10, 20, 20, 0, 2}, Box{-0.5f, 0, 100.5f, 50, 1, 3}, Box{90, 90, 150, 120, 2, 4}};
  ImageAnnotation b = a;
  try {
    check_boxes_in_image(a, 100, 100, "t.csv", false, nullptr);
    FAIL();
  } catch (const IOError& e) {
    std::string m = e.what();
    EXPECT_EQ(m.rfind("t.csv:4: ", 0), 0u) << m;
    EXPECT_NE(m.find("outside the 100 x 100 image"), std::string::npos) << m;
  }
  std::vector<BadRow> bad;
  check_boxes_in_image(b, 100, 100, "t.csv", true, &bad);
  ASSERT_EQ(b.boxes.size(), 2u);
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_EQ(bad[0].line, 4);
  // Within the 1 px slack: clipped.
  EXPECT_FLOAT_EQ(b.boxes[1].x1, 0.0f);
  EXPECT_FLOAT_EQ(b.boxes[1].x2, 100.0f);
}

}  // namespace
}  // namespace sx::io
