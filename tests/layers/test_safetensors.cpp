// safetensors: round trips of every dtype, a file written outside our code (the fixture script),
// and refusal of malformed files -- one case per validation rule, each checked for a message
// naming the file (and the tensor where one is involved).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "io/safetensors.h"

namespace sx {
namespace {

std::string data_path(const std::string& f) { return std::string(SX_TEST_DATA_DIR) + "/layers/" + f; }

// The process id keeps parallel runs of this program (ctest -j, two build trees) from sharing files.
std::string tmp_path(const std::string& name) {
  return (testing::TempDir().empty() ? std::string("/tmp/") : testing::TempDir()) + "sx_st_" +
         std::to_string(::getpid()) + "_" + name;
}

const Tensor& find(const safetensors::Contents& c, const std::string& name) {
  for (const auto& kv : c.tensors)
    if (kv.first == name) return kv.second;
  throw std::runtime_error("no tensor " + name);
}

TEST(Safetensors, RoundTripAllDtypesAndMetadata) {
  safetensors::TensorList ts = {
      {"a.f32", Tensor::from_vector({1.5, -2, 3.25, 4, 5, 6}, {2, 3}, DType::Float32)},
      {"b.f64", Tensor::from_vector({1e-300, 2, 3}, {3}, DType::Float64)},
      {"c.i64", Tensor::from_vector({-5, 1LL << 40}, {2}, DType::Int64)},
      {"d.i32", Tensor::from_vector({-7, 7}, {1, 2}, DType::Int32)},
      {"e.u8", Tensor::from_vector({0, 255}, {2}, DType::UInt8)},
      {"f.bool", Tensor::from_vector({1, 0, 1}, {3}, DType::Bool)},
      {"g.scalar", Tensor::scalar(42.0)},
      {"h.empty", Tensor::zeros({0, 3})},
      {"i.noncontig", Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).t()},
  };
  safetensors::Metadata md = {{"format", "pt"}, {"note", "quote \" and \\ and \n newline"}};
  const std::string path = tmp_path("roundtrip.safetensors");
  safetensors::save(path, ts, md);
  auto c = safetensors::load(path);
  EXPECT_EQ(c.metadata, md);
  ASSERT_EQ(c.tensors.size(), ts.size());
  for (const auto& [name, t] : ts) {
    const Tensor& r = find(c, name);
    EXPECT_EQ(r.dtype(), t.dtype()) << name;
    EXPECT_EQ(r.shape(), t.shape()) << name;
    EXPECT_EQ(r.to_vector(), t.to_vector()) << name;
  }
  // Layout: header length is 8-byte aligned.
  std::string bytes = safetensors::serialize(ts, md);
  uint64_t hl;
  std::memcpy(&hl, bytes.data(), 8);
  EXPECT_EQ(hl % 8, 0u);
  std::remove(path.c_str());
}

TEST(Safetensors, ReadsAFileWrittenByTheFixtureScript) {
  auto c = safetensors::load(data_path("resnet18_golden.safetensors"));
  EXPECT_EQ(c.metadata.at("format"), "pt");
  std::vector<double> halves;
  for (int k = 0; k < 12; ++k) halves.push_back(k * 0.5 - 3);
  EXPECT_EQ(find(c, "dtype.f64").to_vector(), halves);
  EXPECT_EQ(find(c, "dtype.f16").dtype(), DType::Float16);
  EXPECT_EQ(find(c, "dtype.bf16").dtype(), DType::BFloat16);
  EXPECT_EQ(find(c, "dtype.i64").to_vector()[0], -6);
  EXPECT_EQ(find(c, "dtype.i32").to_vector()[11], 5);
  EXPECT_EQ(find(c, "dtype.u8").to_vector()[11], 220);
  auto b = find(c, "dtype.bool").to_vector();
  for (int k = 0; k < 12; ++k) EXPECT_EQ(b[k], k % 3 == 0 ? 1.0 : 0.0);
  EXPECT_EQ(find(c, "dtype.scalar").shape(), Shape{});
  EXPECT_EQ(find(c, "dtype.scalar").item(), 7.25);
  EXPECT_EQ(find(c, "dtype.empty").shape(), (Shape{0, 5}));
  // Half types upcast on request.
  auto u = safetensors::load(data_path("resnet18_golden.safetensors"), /*upcast_half=*/true);
  EXPECT_EQ(find(u, "dtype.f16").dtype(), DType::Float32);
  EXPECT_EQ(find(u, "dtype.f16").to_vector(), halves);
  EXPECT_EQ(find(u, "dtype.bf16").to_vector(), halves);
  EXPECT_EQ(find(u, "logits_eval").shape(), (Shape{2, 10}));
}

// A file image from a header string and a data section.
std::string image(const std::string& header, const std::string& data, int64_t declared = -1) {
  std::string s(8, '\0');
  uint64_t hl = declared >= 0 ? static_cast<uint64_t>(declared) : header.size();
  for (int k = 0; k < 8; ++k) s[k] = static_cast<char>((hl >> (8 * k)) & 0xFF);
  return s + header + data;
}

void expect_refused(const std::string& bytes, const std::string& needle, const std::string& tensor = "") {
  const std::string src = "case.safetensors";
  try {
    safetensors::parse(bytes.data(), bytes.size(), src);
    ADD_FAILURE() << "accepted a malformed file (expected: " << needle << ")";
  } catch (const IOError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(src), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << "message: " << msg << "\nexpected: " << needle;
    if (!tensor.empty()) {
      EXPECT_NE(msg.find("'" + tensor + "'"), std::string::npos) << msg;
    }
  }
}

TEST(Safetensors, MalformedFilesAreRefused) {
  const std::string ok_entry = R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string eight(8, '\x01');
  // sanity: the well-formed version parses
  {
    std::string b = image("{" + ok_entry + "}", eight);
    EXPECT_EQ(safetensors::parse(b.data(), b.size(), "ok").tensors.size(), 1u);
  }
  expect_refused(std::string("\x05\x00\x00", 3), "too short");
  expect_refused(image("{}", "", 0), "out of range");
  expect_refused(image("{}", "", 200000000), "out of range");
  expect_refused(image("{" + ok_entry + "}", eight, 5000), "past the end");
  expect_refused(image("{\"w\":", ""), "malformed header JSON");
  expect_refused(image("[1,2]", ""), "not a JSON object");
  expect_refused(image("{\"w\":{\"dtype\":\"F32\",}}", ""), "malformed header JSON");
  expect_refused(image(std::string(20, '[') + std::string(20, ']'), ""), "nesting too deep");
  expect_refused(image("{\"w\":[1]}", ""), "not an object", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[2]}})", eight), "needs dtype, shape and data_offsets", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", eight), "unknown field",
                 "w");
  expect_refused(image(R"({"w":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", eight),
                 "unsupported dtype 'F8_E4M3'", "w");
  expect_refused(image(R"({"w":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}})", eight), "unsupported dtype 'C64'",
                 "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", eight), "non-negative", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", eight), "non-negative", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", eight),
                 "overflows", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", eight), "begin > end", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", eight), "= 12 bytes", "w");
  expect_refused(image(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", eight), "past the data section",
                 "w");
  // gap between tensors
  expect_refused(image(R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                       eight),
                 "gap", "b");
  // overlap
  expect_refused(image(R"({"a":{"dtype":"U8","shape":[6],"data_offsets":[0,6]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})",
                       eight),
                 "previous tensor ends", "b");
  // trailing bytes after the last tensor
  expect_refused(image("{" + ok_entry + "}", eight + "xx"), "data section holds 10 bytes");
  // first tensor not at 0
  expect_refused(image(R"({"w":{"dtype":"U8","shape":[6],"data_offsets":[2,8]}})", eight), "gap", "w");
  expect_refused(image("{" + ok_entry + "," + ok_entry + "}", eight), "duplicate entry 'w'");
  expect_refused(image(R"({"__metadata__":{"k":1}})", ""), "is not a string");
  expect_refused(image(R"({"w":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", std::string("\x01\x02", 2)),
                 "must be 0 or 1", "w");
  expect_refused(image("{\"w\":\"unterminated}", ""), "malformed header JSON");
  expect_refused(image("{} trailing", ""), "trailing characters");
}

// A header exactly as the writer before nlohmann-json produced it (compact, __metadata__ first,
// tensors in the given order, escapes \" \\ \n \t and \u00XX): it loads, and today's writer still
// produces the same bytes for the same input (the on-disk format did not change).
TEST(Safetensors, ReadsAndWritesTheHeaderOfTheEarlierWriter) {
  std::string header =
      R"({"__metadata__":{"format":"pt","note":"q \" b \\ n \n t \t c \u0001"},)"
      R"("w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("s":{"dtype":"F64","shape":[],"data_offsets":[8,16]}})";
  while (header.size() % 8 != 0) header += ' ';
  std::string data(16, '\0');
  const float w[2] = {1.5f, -2.0f};
  const double sc = 7.25;
  std::memcpy(&data[0], w, 8);
  std::memcpy(&data[8], &sc, 8);
  const std::string bytes = image(header, data);
  auto c = safetensors::parse(bytes.data(), bytes.size(), "old.safetensors");
  EXPECT_EQ(c.metadata.at("format"), "pt");
  EXPECT_EQ(c.metadata.at("note"), "q \" b \\ n \n t \t c \x01");
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(find(c, "w").to_vector(), (std::vector<double>{1.5, -2.0}));
  EXPECT_EQ(find(c, "s").shape(), Shape{});
  EXPECT_EQ(find(c, "s").item(), 7.25);
  safetensors::TensorList again = {{"w", find(c, "w")}, {"s", find(c, "s")}};
  EXPECT_EQ(safetensors::serialize(again, c.metadata), bytes);
}

// What nlohmann-json alone would let pass: a repeated key anywhere, integers past int64, deep nesting.
TEST(Safetensors, HeaderChecksOnTopOfTheJsonParser) {
  const std::string eight(8, '\x01');
  expect_refused(image(R"({"w":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}})", eight),
                 "duplicate key 'dtype'");
  expect_refused(image(R"({"__metadata__":{"k":"a","k":"b"}})", ""), "duplicate key 'k'");
  expect_refused(image(R"({"__metadata__":{"k":"a"},"__metadata__":{"k":"a"}})", ""), "duplicate entry '__metadata__'");
  expect_refused(image(R"({"w":{"dtype":"U8","shape":[9223372036854775808],"data_offsets":[0,8]}})", eight),
                 "non-negative", "w");
  expect_refused(image(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,18446744073709551616]}})", eight),
                 "non-negative", "w");
  expect_refused(image("{\"w\":\"\xff\"}", ""), "malformed header JSON");
  // containers 16 levels below the top-level object are allowed (as before), 17 are not
  auto nested = [](int levels) {
    return R"({"__metadata__":{"k":"v"},"x":)" + std::string(levels, '[') + std::string(levels, ']') + "}";
  };
  expect_refused(image(nested(17), ""), "nesting too deep");
  expect_refused(image(nested(16), ""), "entry is not an object", "x");
}

TEST(Safetensors, MissingFileAndAtomicOverwrite) {
  EXPECT_THROW(safetensors::load(tmp_path("does_not_exist.safetensors")), IOError);
  const std::string path = tmp_path("atomic.safetensors");
  safetensors::save(path, {{"x", Tensor::ones({3})}});
  // A failing save (duplicate names) leaves the previous file intact and loadable.
  EXPECT_THROW(safetensors::save(path, {{"y", Tensor::ones({2})}, {"y", Tensor::ones({2})}}), ValueError);
  auto c = safetensors::load(path);
  ASSERT_EQ(c.tensors.size(), 1u);
  EXPECT_EQ(c.tensors[0].first, "x");
  // Overwrite replaces the contents.
  safetensors::save(path, {{"z", Tensor::zeros({4})}});
  EXPECT_EQ(safetensors::load(path).tensors[0].first, "z");
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sx
