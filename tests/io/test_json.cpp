// io/json.h: the nlohmann-json helpers every JSON file of the product goes through (the writer
// test that tests/train/test_checkpoint.cpp held for the hand-written JsonWriter, moved here).
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "io_test_util.h"
#include "tensor/errors.h"

namespace sx::io {
namespace {

TEST(Json, WritesNestedDocuments) {
  Json w = Json::object();
  w["auroc"] = 0.5;
  w["ci"] = {0.25, 0.75};
  w["name"] = "a \"b\"\n";
  w["n"] = int64_t{3};
  w["nan"] = NAN;
  w["inf"] = -INFINITY;
  w["list"] = Json::array({Json{{"x", true}}});
  const std::string s = json_text(w);
  EXPECT_NE(s.find("\"auroc\": 0.5"), std::string::npos) << s;
  EXPECT_NE(s.find("\"a \\\"b\\\"\\n\""), std::string::npos) << s;
  EXPECT_NE(s.find("\"nan\": null"), std::string::npos) << s;
  EXPECT_NE(s.find("\"inf\": null"), std::string::npos) << s;
  EXPECT_NE(s.find("\"x\": true"), std::string::npos) << s;
  EXPECT_EQ(s.back(), '\n');
  // keys stay in insertion order
  EXPECT_LT(s.find("\"auroc\""), s.find("\"ci\""));
  EXPECT_LT(s.find("\"n\""), s.find("\"nan\""));
  // read back: the same values (NaN and infinities come back as null)
  Json r = parse_json(s, "doc.json");
  EXPECT_EQ(r["ci"], Json({0.25, 0.75}));
  EXPECT_EQ(r["name"], "a \"b\"\n");
  EXPECT_TRUE(r["n"].is_number_integer());
  EXPECT_EQ(r["n"], 3);
  EXPECT_TRUE(r["nan"].is_null());
  EXPECT_EQ(r["list"][0]["x"], true);
  // compact form: one line, no newline
  EXPECT_EQ(json_text(Json{{"a", 1}, {"b", {1, 2}}}, -1), "{\"a\":1,\"b\":[1,2]}");
  // a string that is not UTF-8 is refused rather than written as an invalid document
  EXPECT_THROW(json_text(Json{{"bad", std::string("\xff\xfe")}}), ValueError);
}

TEST(Json, NumbersReadBackExactly) {
  for (double v : {0.1, 1.0 / 3.0, 1e-300, 123456.789, -2.5e17, 0.99999999999999989}) {
    Json r = parse_json(json_text(Json{{"v", v}}), "n.json");
    EXPECT_EQ(r["v"].get<double>(), v);
  }
}

TEST(Json, MalformedTextNamesTheSource) {
  for (const char* bad : {"", "{", "[1, 2", "{\"a\": }", "{} x", "{'a': 1}"}) {
    try {
      parse_json(bad, "some/file.json");
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const IOError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("some/file.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find("malformed JSON"), std::string::npos) << msg;
    }
  }
}

TEST(Json, WriteAtomicAndReadFile) {
  test::TempDir dir;
  const std::string path = dir.path + "/m.json";
  write_json_atomic(path, Json{{"k", "v"}, {"x", 2.5}});
  Json r = read_json_file(path);
  EXPECT_EQ(r["k"], "v");
  EXPECT_EQ(r["x"], 2.5);
  EXPECT_THROW(read_json_file(dir.path + "/absent.json"), IOError);
}

}  // namespace
}  // namespace sx::io
