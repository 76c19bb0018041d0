#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "optimi/nn.hpp"
#include "optimi/random.hpp"

using namespace optimi;
using namespace optimi::nn;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("optimi_safetensors_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
    return names;
  }

 private:
  fs::path path_;
};

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), bytes.size());
}

std::string length_field(uint64_t n) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = char(uint8_t(n >> (8 * i)));
  return out;
}

// A file made of `header` (verbatim) and `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  return length_field(header.size()) + header + std::string(data_bytes, '\0');
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  const Tensor ca = a.contiguous();
  const Tensor cb = b.contiguous();
  return a.nbytes() == 0 || std::memcmp(ca.data_ptr(), cb.data_ptr(), size_t(a.nbytes())) == 0;
}

void check_rejected(const fs::path& path, const std::string& problem) {
  try {
    load_safetensors(path);
    FAIL("expected std::runtime_error containing '" << problem << "'");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains(problem));
    CHECK_THAT(std::string(e.what()), Catch::Contains(path.string()));
  }
}

std::map<std::string, Tensor> every_dtype() {
  manual_seed(11);
  Tensor flags = Tensor::zeros({5}, DType::Bool);
  auto* bytes = static_cast<unsigned char*>(flags.data_ptr());
  bytes[1] = bytes[4] = 1;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  return {
      {"f64", Tensor::from_vector(std::vector<double>{1.0 / 3.0, -2.5, 1e300}, {3})},
      {"f32", Tensor::randn({3, 4})},
      {"f32.special", Tensor::from_vector(std::vector<float>{nan, -0.0f, inf, -inf, 1e-45f}, {5})},
      {"f16", Tensor::randn({7}, DType::Float16)},
      {"bf16", Tensor::randn({2, 3}, DType::BFloat16)},
      {"i64", Tensor::from_vector(std::vector<int64_t>{-1, std::numeric_limits<int64_t>::max(),
                                                       std::numeric_limits<int64_t>::min()},
                                  {3})},
      {"bool", flags},
      {"empty", Tensor::zeros({0, 3})},
      {"scalar", Tensor::full({}, 2.5)},
      {"transposed", Tensor::randn({3, 2}).transpose(0, 1)},
  };
}

}  // namespace

TEST_CASE("safetensors round-trips every dtype bit-exactly", "[safetensors]") {
  TempDir dir;
  const fs::path path = dir.path() / "all.safetensors";
  const auto tensors = every_dtype();
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"layers", "4"}};
  save_safetensors(path, tensors, metadata);

  const SafetensorsFile file = load_safetensors(path);
  CHECK(file.metadata == metadata);
  REQUIRE(file.tensors.size() == tensors.size());
  for (const auto& [name, t] : tensors) {
    INFO(name);
    const Tensor& loaded = file.tensors.at(name);
    CHECK(loaded.device() == Device::cpu());
    CHECK(same_bytes(loaded, t));
  }

  save_safetensors(path, {{"x", Tensor::ones({1})}});
  CHECK(load_safetensors(path).metadata.empty());
}

TEST_CASE("safetensors files follow the reference layout", "[safetensors]") {
  TempDir dir;
  const fs::path path = dir.path() / "layout.safetensors";
  save_safetensors(path, {{"b", Tensor::ones({2}, DType::BFloat16)}, {"a", Tensor::zeros({3, 1})}},
                   {{"k", "v"}});
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  CHECK((8 + n) % 8 == 0);
  CHECK(bytes.size() == 8 + n + 12 + 4);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  CHECK(header["a"]["dtype"] == "F32");
  CHECK(header["a"]["shape"] == nlohmann::json::array({3, 1}));
  CHECK(header["a"]["data_offsets"] == nlohmann::json::array({0, 12}));
  CHECK(header["b"]["dtype"] == "BF16");
  CHECK(header["b"]["data_offsets"] == nlohmann::json::array({12, 16}));
  CHECK(header["__metadata__"]["k"] == "v");
  // bfloat16 1.0 is 0x3f80, little-endian.
  CHECK(bytes.substr(8 + n + 12) == std::string("\x80\x3f\x80\x3f", 4));
}

TEST_CASE("state dicts round-trip through safetensors files", "[safetensors]") {
  TempDir dir;
  const fs::path path = dir.path() / "model.safetensors";
  auto make = [] {
    auto model = std::make_shared<Sequential>(std::make_shared<Embedding>(6, 4),
                                              std::make_shared<LayerNorm>(4),
                                              std::make_shared<Linear>(4, 3));
    model->register_buffer("step", Tensor::full({1}, 42.0, DType::Int64));
    return model;
  };
  for (DType dtype : {DType::Float32, DType::BFloat16}) {
    INFO(dtype_name(dtype));
    manual_seed(1);
    auto source = make();
    source->to(dtype);
    save_state_dict(*source, path, {{"arch", "test"}});
    manual_seed(2);
    auto target = make();
    target->to(dtype);
    target->named_buffers()[0].second.fill_(0.0);
    load_state_dict_file(*target, path);
    const auto expected = source->state_dict();
    for (const auto& [name, t] : target->state_dict()) {
      INFO(name);
      CHECK(same_bytes(t, expected.at(name)));
    }
    CHECK(load_safetensors(path).metadata.at("arch") == "test");
  }
  Linear other(4, 4);
  CHECK_THROWS_AS(load_state_dict_file(other, path), std::invalid_argument);
}

TEST_CASE("safetensors rejects truncated and corrupted files", "[safetensors]") {
  TempDir dir;
  const fs::path good = dir.path() / "good.safetensors";
  const fs::path bad = dir.path() / "bad.safetensors";
  save_safetensors(good, {{"w", Tensor::randn({2, 3})}, {"i", Tensor::zeros({2}, DType::Int64)}},
                   {{"note", "x"}});
  const std::string bytes = read_bytes(good);

  for (size_t size = 0; size < bytes.size(); ++size) {
    write_bytes(bad, bytes.substr(0, size));
    INFO("truncated to " << size << " of " << bytes.size() << " bytes");
    CHECK_THROWS_AS(load_safetensors(bad), std::runtime_error);
  }

  // Every header byte flipped: non-ASCII bytes make the JSON invalid wherever they land.
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[i])) << (8 * i);
  for (size_t i = 8; i < 8 + n; ++i) {
    std::string flipped = bytes;
    flipped[i] = char(flipped[i] ^ 0xff);
    write_bytes(bad, flipped);
    INFO("byte " << i << " flipped");
    CHECK_THROWS_AS(load_safetensors(bad), std::runtime_error);
  }

  write_bytes(bad, length_field(uint64_t(1) << 62) + bytes.substr(8));
  check_rejected(bad, "exceeds the limit");
  write_bytes(bad, length_field(bytes.size()) + bytes.substr(8));
  check_rejected(bad, "exceeds the");
  write_bytes(bad, "abc");
  check_rejected(bad, "fewer than the 8-byte");
}

TEST_CASE("safetensors validates every header field", "[safetensors]") {
  TempDir dir;
  const fs::path path = dir.path() / "crafted.safetensors";
  auto rejects = [&](const std::string& header, size_t data_bytes, const std::string& problem) {
    write_bytes(path, raw_file(header, data_bytes));
    check_rejected(path, problem);
  };

  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}})",
                             8));
  CHECK(load_safetensors(path).tensors.at("a").shape() == Shape{2});

  rejects("{", 0, "not valid JSON");
  rejects("", 0, "not valid JSON");
  rejects("[]", 0, "not a JSON object");
  rejects(R"({"a":5})", 0, "tensor 'a': entry is not a JSON object");
  rejects(R"({"a":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8,
          "unsupported dtype 'I32'");
  rejects(R"({"a":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8, "\"dtype\"");
  rejects(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8, "\"dtype\"");
  rejects(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8, "\"shape\"");
  rejects(R"({"a":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", 8, "\"shape\"");
  rejects(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "negative");
  rejects(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}})", 8, "non-integer");
  rejects(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", 8, "non-integer");
  rejects(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8,
          "too many elements");
  rejects(R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296],"data_offsets":[0,0]}})", 8,
          "too many elements");
  rejects(R"({"a":{"dtype":"F32","shape":[2]}})", 8, "\"data_offsets\"");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}})", 8, "\"data_offsets\"");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", 8, "negative");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8, "begin > end");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", 8, "exceed");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", 8,
          "exceed");
  rejects(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 12, "does not fit");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
          12, "overlap");
  rejects(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
          8, "overlap");
  rejects(R"({"__metadata__":{"k":1}})", 0, "metadata value for 'k' is not a string");
  rejects(R"({"__metadata__":["k"]})", 0, "\"__metadata__\" is not a JSON object");

  check_rejected(dir.path() / "missing.safetensors", "cannot open");
  check_rejected(dir.path(), "not a regular file");
}

TEST_CASE("safetensors writes atomically", "[safetensors]") {
  TempDir dir;
  const fs::path path = dir.path() / "model.safetensors";
  save_safetensors(path, {{"x", Tensor::zeros({4})}});
  save_safetensors(path, {{"y", Tensor::ones({2})}});
  CHECK(dir.entries() == std::vector<std::string>{"model.safetensors"});
  const auto loaded = load_safetensors(path);
  CHECK(loaded.tensors.size() == 1);
  CHECK(loaded.tensors.at("y").to_vector<float>() == std::vector<float>{1.0f, 1.0f});

  // The rename fails when a directory holds the name; the temporary file must go with it.
  const fs::path occupied = dir.path() / "occupied";
  fs::create_directory(occupied);
  CHECK_THROWS_AS(save_safetensors(occupied, {{"x", Tensor::zeros({4})}}), std::runtime_error);
  CHECK(dir.entries().size() == 2);
  CHECK(fs::is_empty(occupied));

  try {
    save_safetensors(dir.path() / "no_such_dir" / "m.safetensors", {{"x", Tensor::zeros({1})}});
    FAIL("expected std::runtime_error");
  } catch (const std::runtime_error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Contains("no_such_dir"));
  }

  CHECK_THROWS_AS(save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}}),
                  std::invalid_argument);
  CHECK_THROWS_AS(save_safetensors(path, {{"x", Tensor()}}), std::invalid_argument);
  CHECK_THROWS_AS(save_safetensors(path, {{"\xff", Tensor::zeros({1})}}), std::invalid_argument);
  CHECK(load_safetensors(path).tensors.count("y") == 1);
}
