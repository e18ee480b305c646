// PNG/JPEG read and write, atomic files, the progress bar.
#include <gtest/gtest.h>

#include <cstring>

#include "io/atomic_file.h"
#include "io/image_io.h"
#include "io/progress.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

using test::TempDir;

TEST(ImageIo, Png8GreyAndRgbRoundTrip) {
  TempDir dir;
  const int w = 13, h = 7;
  std::vector<uint8_t> g(w * h), rgb(w * h * 3);
  for (int i = 0; i < w * h; ++i) {
    g[i] = static_cast<uint8_t>(i * 37);
    rgb[3 * i] = static_cast<uint8_t>(i * 3), rgb[3 * i + 1] = static_cast<uint8_t>(255 - i), rgb[3 * i + 2] = static_cast<uint8_t>(i * 11);
  }
  write_png(dir / "g.png", g.data(), w, h, 1);
  GreyImage a = read_image(dir / "g.png");
  EXPECT_EQ(a.width, w);
  EXPECT_EQ(a.height, h);
  EXPECT_EQ(a.bit_depth, 8);
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(a.pixels[i], g[i]);
  write_png(dir / "c.png", rgb.data(), w, h, 3);
  GreyImage b = read_image(dir / "c.png");
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(b.pixels[i], (rgb[3 * i] * 77 + rgb[3 * i + 1] * 150 + rgb[3 * i + 2] * 29) >> 8);
  // No temporary file is left behind.
  for (const auto& n : test::list_dir(dir.path)) EXPECT_EQ(n.find(".tmp."), std::string::npos) << n;
}

TEST(ImageIo, Png16RoundTripIsExact) {
  TempDir dir;
  const int w = 31, h = 17;
  std::vector<uint16_t> v(w * h);
  for (int i = 0; i < w * h; ++i) v[i] = static_cast<uint16_t>(i * 2113 % 65536);
  v[0] = 0;
  v[1] = 65535;
  write_png16(dir / "a.png", v.data(), w, h);
  GreyImage a = read_image(dir / "a.png");
  EXPECT_EQ(a.bit_depth, 16);
  ASSERT_EQ(a.pixels.size(), v.size());
  for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(a.pixels[i], v[i]) << i;
}

TEST(ImageIo, ReadsFilesWrittenByPillow) {
  const std::string d = test::data_dir() + "/images/";
  GreyImage g = read_image(d + "grey16.png");
  EXPECT_EQ(g.bit_depth, 16);
  std::string ref = test::slurp(d + "grey16.u16");
  ASSERT_EQ(ref.size(), g.pixels.size() * 2);
  for (size_t i = 0; i < g.pixels.size(); ++i) {
    uint16_t v;
    std::memcpy(&v, ref.data() + 2 * i, 2);
    ASSERT_EQ(g.pixels[i], v) << i;
  }
  struct Case {
    const char* file;
    const char* grey;
    int tol;
  };
  for (Case c : {Case{"rgb8.png", "rgb8.grey", 0}, Case{"photo.jpg", "photo.grey", 3}, Case{"grey.jpg", "grey.jpg.grey", 3}}) {
    GreyImage im = read_image(d + c.file);
    std::string r = test::slurp(d + c.grey);
    EXPECT_EQ(im.width, 23) << c.file;
    EXPECT_EQ(im.height, 19) << c.file;
    EXPECT_EQ(im.bit_depth, 8);
    ASSERT_EQ(r.size(), im.pixels.size()) << c.file;
    for (size_t i = 0; i < r.size(); ++i) ASSERT_NEAR(im.pixels[i], static_cast<uint8_t>(r[i]), c.tol) << c.file << " " << i;
  }
}

std::string png_header_claiming(uint32_t w, uint32_t h) {
  // A valid PNG of 1x1 whose IHDR is rewritten to claim w x h (CRC recomputed by re-encoding).
  uint8_t px = 7;
  std::string png = encode_png(&px, 1, 1, 1);
  auto put = [&](size_t off, uint32_t v) {
    png[off] = static_cast<char>(v >> 24), png[off + 1] = static_cast<char>(v >> 16);
    png[off + 2] = static_cast<char>(v >> 8), png[off + 3] = static_cast<char>(v);
  };
  put(16, w);
  put(20, h);
  return png;
}

TEST(ImageIo, RejectsHugeClaimedSizesBeforeDecoding) {
  TempDir dir;
  test::spit(dir / "huge.png", png_header_claiming(60000, 60000));
  try {
    read_image(dir / "huge.png");
    FAIL() << "accepted a 60000 x 60000 PNG";
  } catch (const IOError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("huge.png"), std::string::npos) << m;
  }
  ImageLimits lim;
  lim.max_side = 1000;
  lim.max_pixels = 1000;
  test::spit(dir / "mid.png", png_header_claiming(800, 800));
  try {
    read_image(dir / "mid.png", lim);
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("beyond the limit"), std::string::npos) << e.what();
  }
}

TEST(ImageIo, RejectsEmptyTruncatedAndGarbageFiles) {
  TempDir dir;
  test::spit(dir / "empty.png", "");
  EXPECT_THROW(read_image(dir / "empty.png"), IOError);
  test::spit(dir / "text.png", "definitely not an image, just text");
  EXPECT_THROW(read_image(dir / "text.png"), IOError);
  EXPECT_THROW(read_image(dir / "missing.png"), IOError);
  std::vector<uint16_t> v(64 * 64);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i * 7919);
  std::string png = encode_png16(v.data(), 64, 64);
  for (double f : {0.1, 0.5, 0.9}) {
    test::spit(dir / "cut.png", png.substr(0, static_cast<size_t>(png.size() * f)));
    EXPECT_THROW(read_image(dir / "cut.png"), IOError) << f;
  }
  std::string jpg = test::slurp(test::data_dir() + "/images/photo.jpg");
  test::spit(dir / "cut.jpg", jpg.substr(0, 40));
  EXPECT_THROW(read_image(dir / "cut.jpg"), IOError);
}

TEST(ImageIo, RandomByteFlipsNeverCrash) {
  TempDir dir;
  std::vector<uint16_t> v(40 * 30);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint16_t>(i * 977);
  const std::string png = encode_png16(v.data(), 40, 30);
  const std::string jpg = test::slurp(test::data_dir() + "/images/photo.jpg");
  uint64_t s = 99;
  int decoded = 0, rejected = 0;
  for (const std::string* src : {&png, &jpg})
    for (int trial = 0; trial < 150; ++trial) {
      std::string b = *src;
      for (int k = 0; k < 4; ++k) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        b[(s >> 33) % b.size()] = static_cast<char>(s >> 17);
      }
      try {
        GreyImage g = decode_image(b.data(), b.size(), "fuzz");
        EXPECT_EQ(g.pixels.size(), static_cast<size_t>(g.width) * g.height);
        ++decoded;
      } catch (const IOError&) {
        ++rejected;
      }
    }
  // Never crashing is shown by reaching this line (any exception but IOError fails the test); the
  // flips must also have reached both outcomes, or the fuzz exercised only one path.
  EXPECT_GT(decoded, 0);
  EXPECT_GT(rejected, 0);
}

TEST(ImageIo, JpegWithAnOversizedHuffmanTableIsRejected) {
  // A DHT segment declaring 16 x 255 codes: stb_image 2.27 would write past its tables.
  std::string jpg("\xFF\xD8\xFF\xC4", 4);
  const size_t len = 2 + 17 + 16 * 255;
  jpg.push_back(static_cast<char>(len >> 8));
  jpg.push_back(static_cast<char>(len & 0xff));
  jpg.push_back(0x00);
  for (int i = 0; i < 16; ++i) jpg.push_back(static_cast<char>(0xFF));
  jpg.append(16 * 255, '\x01');
  jpg += std::string("\xFF\xD9", 2);
  try {
    decode_image(jpg.data(), jpg.size(), "dht.jpg");
    FAIL();
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("Huffman"), std::string::npos) << e.what();
  }
}

TEST(ImageIo, WriterArgumentChecks) {
  TempDir dir;
  uint8_t p[12] = {};
  EXPECT_THROW(write_png(dir / "x.png", p, 2, 2, 2), ValueError);
  EXPECT_THROW(write_png(dir / "x.png", p, 0, 2, 1), ValueError);
  EXPECT_THROW(write_png(dir / "nodir/x.png", p, 2, 2, 1), IOError);
}

TEST(AtomicFile, CommitReplacesAndAbortLeavesNothing) {
  TempDir dir;
  write_file_atomic(dir / "a.txt", std::string("old"));
  {
    AtomicFile f(dir / "a.txt");
    f.write("new contents");
    EXPECT_EQ(test::slurp(dir / "a.txt"), "old");  // not visible before commit
    f.commit();
  }
  EXPECT_EQ(test::slurp(dir / "a.txt"), "new contents");
  {
    AtomicFile f(dir / "a.txt");
    f.write("half");
    // destroyed without commit: an exception or early return
  }
  EXPECT_EQ(test::slurp(dir / "a.txt"), "new contents");
  auto names = test::list_dir(dir.path);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0], "a.txt");
  EXPECT_EQ(read_file(dir / "a.txt"), "new contents");
  EXPECT_THROW(read_file(dir / "a.txt", 3), IOError);
}

TEST(AtomicFile, MakeDirsCreatesParentsAndNamesWhatIsInTheWay) {
  TempDir dir;
  make_dirs(dir / "a/b/c");
  make_dirs(dir / "a/b/c");  // existing: fine
  EXPECT_EQ(test::list_dir(dir / "a/b"), std::vector<std::string>{"c"});
  write_file_atomic(dir / "f", std::string("x"));
  try {
    make_dirs(dir / "f/g");
    FAIL() << "expected an IOError";
  } catch (const IOError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot create folder " + (dir / "f/g")), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_dirs(dir / "f"), IOError);
}

TEST(Progress, LineFormat) {
  std::string l = ProgressBar::format_line("prep", 50, 200, 10.0, "bad=1", false);
  EXPECT_NE(l.find("prep ["), std::string::npos) << l;
  EXPECT_NE(l.find("50/200"), std::string::npos) << l;
  EXPECT_NE(l.find(" 25%"), std::string::npos) << l;
  EXPECT_NE(l.find("5.0/s"), std::string::npos) << l;
  EXPECT_NE(l.find("ETA 30s"), std::string::npos) << l;
  EXPECT_NE(l.find("bad=1"), std::string::npos) << l;
  std::string f = ProgressBar::format_line("x", 200, 200, 100.0, "", true);
  EXPECT_NE(f.find("in 1m40s"), std::string::npos) << f;
  std::string u = ProgressBar::format_line("x", 7, 0, 2.0, "", false);
  EXPECT_NE(u.find("7 3.5/s"), std::string::npos) << u;
}

TEST(Progress, PlainLinesPerTenPercentWhenNotATerminal) {
  TempDir dir;
  std::FILE* f = std::fopen((dir / "log.txt").c_str(), "w");
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar(100, "job", f);
    bar.set_tty(false);
    for (int i = 0; i < 100; ++i) bar.update(1);
    bar.finish();
    bar.finish();  // idempotent
    EXPECT_EQ(bar.count(), 100);
  }
  std::fclose(f);
  std::string log = test::slurp(dir / "log.txt");
  int lines = 0;
  for (char c : log) lines += c == '\n';
  EXPECT_GE(lines, 9);
  EXPECT_LE(lines, 12);
  EXPECT_EQ(log.find('\r'), std::string::npos);
  EXPECT_NE(log.find("100/100"), std::string::npos);
}

}  // namespace
}  // namespace sx::io
