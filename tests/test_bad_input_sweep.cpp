// Bad-input sweep over the public API (api.md): wrong shapes, dtypes and devices, out-of-range
// dims and indices, empty and undefined tensors, NaN/Inf hyperparameters, mismatched files.
// Each must throw the documented exception (std::invalid_argument for arguments,
// std::runtime_error for files) with a message naming the operation or the offending values;
// nothing may abort or trip a sanitizer.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <memory>
#include <optimi/optimi.hpp>
#include <string>
#include <vector>

using namespace optimi;
namespace F = optimi::nn::functional;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Matches an exception whose message contains every one of `parts`.
class MessageContains : public Catch::MatcherBase<std::exception> {
 public:
  MessageContains(std::initializer_list<std::string> parts) : parts_(parts) {}
  bool match(const std::exception& e) const override {
    const std::string what = e.what();
    for (const std::string& p : parts_) {
      if (what.find(p) == std::string::npos) return false;
    }
    return true;
  }
  std::string describe() const override {
    std::string out = "has a message containing";
    for (const std::string& p : parts_) out += " \"" + p + "\"";
    return out;
  }

 private:
  std::vector<std::string> parts_;
};

#define CHECK_INVALID(expr, ...) \
  CHECK_THROWS_MATCHES(expr, std::invalid_argument, MessageContains({__VA_ARGS__}))
#define CHECK_FILE_ERROR(expr, ...) \
  CHECK_THROWS_MATCHES(expr, std::runtime_error, MessageContains({__VA_ARGS__}))

// A device this process cannot use: any CUDA device in a CPU-only build or on a machine without
// a GPU, and otherwise an index past any real machine's GPUs.
Device unusable_cuda() {
  return cuda_is_available() ? Device::cuda(1000) : Device::cuda();
}

Tensor t23() {
  return Tensor::from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3});
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() / ("optimi_sweep_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  fs::path operator/(const std::string& name) const { return path_ / name; }

 private:
  fs::path path_;
};

struct TwoLayer : nn::Module {
  TwoLayer(int64_t in, int64_t hidden) {
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(in, hidden));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(hidden));
  }
  std::shared_ptr<nn::Linear> fc1;
  std::shared_ptr<nn::LayerNorm> norm;
};

}  // namespace

// ---- core: factories ----

TEST_CASE("sweep: tensor factories reject bad shapes, dtypes and devices", "[sweep]") {
  CHECK_INVALID(Tensor::zeros({2, -1}), "[2, -1]");
  CHECK_INVALID(Tensor::ones({-3}), "[-3]");
  CHECK_INVALID(Tensor::full({-1, 2}, 1.0), "[-1, 2]");
  CHECK_INVALID(Tensor::empty({-1}), "[-1]");
  CHECK_INVALID(Tensor::randn({2, -2}), "[2, -2]");
  CHECK_INVALID(Tensor::randn({2}, DType::Int64), "randn", "int64");
  CHECK_INVALID(Tensor::rand({2}, DType::Int64), "rand", "int64");
  CHECK_INVALID(Tensor::uniform({2}, 1.0, 0.0), "uniform");
  CHECK_INVALID(Tensor::uniform({2}, kNaN, 1.0), "uniform", "nan");
  CHECK_INVALID(Tensor::arange(-1), "arange", "-1");
  CHECK_INVALID(Tensor::from_vector({1.f, 2.f, 3.f}, {2, 2}), "from_vector", "[2, 2]");
  CHECK_INVALID(Tensor::from_vector(std::vector<int64_t>{1, 2}, {3}), "from_vector", "[3]");
  CHECK_INVALID(Tensor::from_vector({1.f}, {-1}), "from_vector", "[-1]");
  // The element count overflows int64: a bad shape, not an allocation to attempt.
  const int64_t huge = int64_t(1) << 40;
  CHECK_INVALID(Tensor::zeros({huge, huge}), "[1099511627776, 1099511627776]");
  CHECK_INVALID(Tensor::empty({huge, huge, huge}), "[1099511627776, 1099511627776, 1099511627776]");
}

TEST_CASE("sweep: tensors on an unusable CUDA device are rejected", "[sweep]") {
  const Device cuda = unusable_cuda();
  CHECK_INVALID(Tensor::zeros({2}, DType::Float32, cuda), "cuda");
  CHECK_INVALID(Tensor::ones({2}, DType::Float32, cuda), "cuda");
  CHECK_INVALID(Tensor::full({2}, 1.0, DType::Float32, cuda), "cuda");
  CHECK_INVALID(Tensor::randn({2}, DType::Float32, cuda), "cuda");
  CHECK_INVALID(Tensor::from_vector({1.f, 2.f}, {2}, DType::Float32, cuda), "cuda");
  CHECK_INVALID(Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}, cuda), "cuda");
  CHECK_INVALID(t23().to(cuda), "cuda");
  CHECK_INVALID(t23().to(DType::BFloat16, cuda), "cuda");
  CHECK_INVALID(memory_stats(Device::cuda(-1)), "cuda");
  CHECK_INVALID(reset_peak_memory_stats(Device::cuda(1000)), "cuda");

  nn::Linear linear(2, 3);
  CHECK_INVALID(linear.to(cuda), "cuda");
  // A failed move leaves the module usable where it was.
  CHECK(linear.weight.device() == Device::cpu());
  CHECK(linear.forward(Tensor::ones({1, 2})).shape() == Shape{1, 3});
}

// ---- core: the undefined tensor ----

TEST_CASE("sweep: an undefined tensor is rejected everywhere", "[sweep]") {
  Tensor u;
  const Tensor t = t23();
  CHECK_INVALID(u.shape(), "defined");
  CHECK_INVALID(u.dim(), "defined");
  CHECK_INVALID(u.numel(), "defined");
  CHECK_INVALID(u.dtype(), "defined");
  CHECK_INVALID(u.device(), "defined");
  CHECK_INVALID(u.is_floating_point(), "defined");
  CHECK_INVALID(u.item(), "defined");
  CHECK_INVALID(u.to_vector<float>(), "defined");
  CHECK_INVALID(u.requires_grad(), "defined");
  CHECK_INVALID(u.requires_grad_(), "defined");
  CHECK_INVALID(u.grad(), "defined");
  CHECK_INVALID(u.set_grad(t), "defined");
  CHECK_INVALID(u.backward(), "defined");
  CHECK_INVALID(u.detach(), "defined");
  CHECK_INVALID(u.register_post_accumulate_grad_hook([](Tensor&) {}), "defined");
  CHECK_INVALID(u.to(DType::BFloat16), "defined");
  CHECK_INVALID(u.to(Device::cpu()), "defined");
  CHECK_INVALID(u.copy_(t), "defined");
  CHECK_INVALID(Tensor(t23()).copy_(u), "defined");
  CHECK_INVALID(u.sum(), "defined");
  CHECK_INVALID(u.mean(), "defined");
  CHECK_INVALID(u.sum(0), "defined");
  CHECK_INVALID(u.reshape({1}), "defined");
  CHECK_INVALID(u.transpose(0, 1), "defined");
  CHECK_INVALID(u.exp(), "defined");
  CHECK_INVALID(u + t, "defined");
  CHECK_INVALID(t - u, "defined");
  CHECK_INVALID(u * 2.0, "defined");
  CHECK_INVALID(2.0 / u, "defined");
  CHECK_INVALID(-u, "defined");
  CHECK_INVALID(matmul(u, t), "defined");
  CHECK_INVALID(matmul(t, u), "defined");
  CHECK_INVALID(cat({t, u}, 0), "defined");
  CHECK_INVALID(split(u, 1, 0), "defined");
  CHECK_INVALID(index_select(t, 0, u), "defined");
  CHECK_INVALID(index_select(u, 0, Tensor::from_vector(std::vector<int64_t>{0}, {1})), "defined");
  CHECK_INVALID(F::relu(u), "defined");
  CHECK_INVALID(F::softmax(u, 0), "defined");
  CHECK_INVALID(F::linear(u, Tensor::ones({3, 3})), "defined");
  CHECK_INVALID(F::linear(t, u), "defined");
  CHECK_INVALID(F::mse_loss(u, t), "defined");
  CHECK_INVALID(F::cross_entropy(t, u), "defined");
  CHECK_INVALID(nn::Linear(3, 2).forward(u), "defined");
  CHECK_INVALID(nn::Embedding(4, 2).forward(u), "defined");
  CHECK_INVALID(nn::LayerNorm(3).forward(u), "defined");
  // Saving one is a bad argument too, not a file problem.
  TempDir dir;
  CHECK_INVALID(nn::save_safetensors(dir / "u.safetensors", {{"u", u}}), "defined");
}

// ---- core: scalars, autograd and copies ----

TEST_CASE("sweep: item, backward, set_grad and copy_ check their operands", "[sweep]") {
  CHECK_INVALID(t23().item(), "item", "[2, 3]");
  CHECK_INVALID(Tensor::zeros({0}).item(), "item", "[0]");

  Tensor w = Tensor::ones({2, 3}).requires_grad_();
  CHECK_INVALID((w * 2.0).backward(), "backward", "[2, 3]");
  CHECK_INVALID(w.set_grad(Tensor::ones({3, 2})), "[3, 2]", "[2, 3]");
  CHECK_INVALID(Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}).requires_grad_(),
                "requires_grad", "int64");

  CHECK_INVALID(w.set_grad(Tensor::ones({2, 3}, DType::BFloat16)), "bfloat16", "float32");
  CHECK_INVALID(w.register_post_accumulate_grad_hook(nullptr),
                "register_post_accumulate_grad_hook");
  CHECK_INVALID(Tensor::ones({2}).register_post_accumulate_grad_hook([](Tensor&) {}),
                "register_post_accumulate_grad_hook");
  CHECK_INVALID((w * 2.0).register_post_accumulate_grad_hook([](Tensor&) {}),
                "register_post_accumulate_grad_hook");

  // Values an integer tensor cannot hold.
  CHECK_INVALID(Tensor::full({2}, kNaN, DType::Int64), "nan");
  CHECK_INVALID(Tensor::full({2}, 1e30, DType::Int64), "full", "int64");
  CHECK_INVALID(Tensor::zeros({2}, DType::Int64).fill_(kInf), "inf");

  Tensor dst = Tensor::zeros({2, 3});
  CHECK_INVALID(dst.copy_(Tensor::ones({4})), "copy_", "[4]", "[2, 3]");
  CHECK_INVALID(dst.copy_(Tensor::ones({3, 3})), "copy_", "[3, 3]", "[2, 3]");
}

// ---- core: arithmetic, matmul, reductions ----

TEST_CASE("sweep: element-wise ops name both shapes when they do not broadcast", "[sweep]") {
  const Tensor a = t23();
  const Tensor b = Tensor::ones({4});
  CHECK_INVALID(a + b, "[2, 3]", "[4]");
  CHECK_INVALID(a - b, "[2, 3]", "[4]");
  CHECK_INVALID(a * b, "[2, 3]", "[4]");
  CHECK_INVALID(a / b, "[2, 3]", "[4]");
  CHECK_INVALID(maximum(a, b), "[2, 3]", "[4]");
  CHECK_INVALID(a + Tensor::ones({3, 2}), "[2, 3]", "[3, 2]");
  CHECK_INVALID(broadcast_shapes("my_op", {2, 3}, {2, 4}), "my_op", "[2, 3]", "[2, 4]");
}

TEST_CASE("sweep: matmul rejects shapes that do not multiply", "[sweep]") {
  CHECK_INVALID(matmul(t23(), Tensor::ones({4, 5})), "matmul", "[2, 3]", "[4, 5]");
  CHECK_INVALID(matmul(Tensor::ones({3}), Tensor::ones({4})), "matmul", "[3]", "[4]");
  CHECK_INVALID(matmul(Tensor::ones({2, 2, 3}), Tensor::ones({3, 3, 4})), "matmul", "[2, 2, 3]",
                "[3, 3, 4]");
  CHECK_INVALID(matmul(Tensor::full({}, 2.0), t23()), "matmul", "[]");
  CHECK_INVALID(matmul(t23(), Tensor::full({}, 2.0)), "matmul", "[]");
}

TEST_CASE("sweep: reductions reject out-of-range dims", "[sweep]") {
  const Tensor a = t23();
  CHECK_INVALID(a.sum(2), "sum", "2");
  CHECK_INVALID(a.sum(-3), "sum", "-3");
  CHECK_INVALID(a.mean(5), "mean", "5");
  CHECK_INVALID(a.max(2), "max", "2");
  CHECK_INVALID(Tensor::zeros({0, 3}).max(), "max", "[0, 3]");
  CHECK_INVALID(Tensor::zeros({0, 3}).max(0), "max", "[0, 3]");
  CHECK_INVALID(Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}).mean(), "mean", "int64");
  CHECK_INVALID(normalize_dim("my_op", 3, 2), "my_op", "3");
}

// ---- core: views ----

TEST_CASE("sweep: views reject bad shapes, dims and indices", "[sweep]") {
  const Tensor a = t23();
  CHECK_INVALID(a.reshape({4}), "reshape", "[2, 3]", "[4]");
  CHECK_INVALID(a.reshape({-1, -1}), "reshape", "[-1, -1]");
  CHECK_INVALID(a.reshape({-2, 3}), "reshape", "[-2, 3]");
  CHECK_INVALID(a.reshape({0, -1}), "reshape", "[0, -1]");
  CHECK_INVALID(a.view({3, -1, 4}), "view", "[3, -1, 4]");
  CHECK_INVALID(a.transpose(0, 1).view({6}), "view", "[6]");
  CHECK_INVALID(a.transpose(0, 2), "transpose", "2");
  CHECK_INVALID(a.transpose(-3, 0), "transpose", "-3");
  CHECK_INVALID(a.permute({0}), "permute", "[0]");
  CHECK_INVALID(a.permute({0, 0}), "permute", "[0, 0]");
  CHECK_INVALID(a.permute({0, 2}), "permute", "2");
  CHECK_INVALID(a.slice(2, 0, 1), "slice", "2");
  CHECK_INVALID(a.slice(1, 0, 3, 0), "slice", "step");
  CHECK_INVALID(a.slice(1, 0, 3, -1), "slice", "step");
  CHECK_INVALID(a.select(0, 2), "select", "2");
  CHECK_INVALID(a.select(1, -4), "select", "-4");
  CHECK_INVALID(a.select(2, 0), "select", "2");
  CHECK_INVALID(a.unsqueeze(3), "unsqueeze", "3");
  CHECK_INVALID(a.unsqueeze(-4), "unsqueeze", "-4");
  CHECK_INVALID(a.squeeze(2), "squeeze", "2");
  CHECK_INVALID(a.expand({2, 4}), "expand", "[2, 3]", "[2, 4]");
  CHECK_INVALID(a.expand({3}), "expand", "[2, 3]", "[3]");
  CHECK_INVALID(a.expand({-2, 2, 3}), "expand", "[-2, 2, 3]");
  CHECK_INVALID(a.size(2), "size", "2");
}

TEST_CASE("sweep: cat, split and index_select reject bad arguments", "[sweep]") {
  const Tensor a = t23();
  CHECK_INVALID(cat({}, 0), "cat");
  CHECK_INVALID(cat({a, Tensor::ones({2, 4})}, 0), "cat", "[2, 3]", "[2, 4]");
  CHECK_INVALID(cat({a, Tensor::ones({6})}, 0), "cat", "[2, 3]", "[6]");
  CHECK_INVALID(cat({a, a}, 2), "cat", "2");
  CHECK_INVALID(split(a, 0, 0), "split", "0");
  CHECK_INVALID(split(a, -1, 0), "split", "-1");
  CHECK_INVALID(split(a, 1, 2), "split", "2");

  auto index = [](std::vector<int64_t> v) {
    const int64_t n = int64_t(v.size());
    return Tensor::from_vector(v, {n});
  };
  CHECK_INVALID(index_select(a, 0, index({0, 2})), "index_select", "2");
  CHECK_INVALID(index_select(a, 1, index({-1})), "index_select", "-1");
  CHECK_INVALID(index_select(a, 2, index({0})), "index_select", "2");
  CHECK_INVALID(index_select(a, 0, Tensor::zeros({1})), "index_select", "float32");
  CHECK_INVALID(index_select(a, 0, Tensor::from_vector(std::vector<int64_t>{0, 1}, {1, 2})),
                "index_select", "[1, 2]");
}

// ---- core: empty tensors work, and never touch memory they do not have ----

TEST_CASE("sweep: empty tensors flow through every op", "[sweep]") {
  const Tensor e = Tensor::zeros({0, 3});
  CHECK(e.to_vector<float>().empty());
  CHECK(e.to_vector<int64_t>().empty());
  CHECK(Tensor::from_vector(std::vector<float>{}, {0}).numel() == 0);
  CHECK((e + 1.0).shape() == Shape{0, 3});
  CHECK((e * Tensor::ones({3})).shape() == Shape{0, 3});
  CHECK(e.exp().shape() == Shape{0, 3});
  CHECK(e.sum().item() == 0.0);
  CHECK(e.sum(0).to_vector<float>() == std::vector<float>{0.f, 0.f, 0.f});
  CHECK_INVALID(e.mean(), "mean", "[0, 3]");
  CHECK(e.reshape({3, 0}).shape() == Shape{3, 0});
  CHECK(e.transpose(0, 1).contiguous().shape() == Shape{3, 0});
  CHECK(matmul(e, Tensor::ones({3, 2})).shape() == Shape{0, 2});
  CHECK(matmul(Tensor::ones({2, 0}), Tensor::ones({0, 4})).to_vector<float>() ==
        std::vector<float>(8, 0.f));
  CHECK(cat({e, e}, 0).shape() == Shape{0, 3});
  CHECK(cat({t23(), e}, 0).shape() == Shape{2, 3});
  for (const Tensor& chunk : split(e, 2, 0)) CHECK(chunk.shape() == Shape{0, 3});
  CHECK(index_select(t23(), 0, Tensor::from_vector(std::vector<int64_t>{}, {0})).shape() ==
        Shape{0, 3});
  CHECK(F::relu(e).shape() == Shape{0, 3});
  CHECK(F::softmax(e, 1).shape() == Shape{0, 3});
  CHECK(F::layer_norm(e, {3}).shape() == Shape{0, 3});
  CHECK(nn::Linear(3, 2).forward(e).shape() == Shape{0, 2});
  CHECK(nn::Embedding(4, 2).forward(Tensor::from_vector(std::vector<int64_t>{}, {0})).shape() ==
        Shape{0, 2});

  // Backward through empty tensors gives empty (or zero) gradients.
  Tensor w = Tensor::ones({3, 2}).requires_grad_();
  matmul(e, w).sum().backward();
  CHECK(w.grad().to_vector<float>() == std::vector<float>(6, 0.f));

  // Saved and loaded like any other tensor.
  TempDir dir;
  nn::save_safetensors(dir / "e.safetensors", {{"e", e}});
  CHECK(nn::load_safetensors(dir / "e.safetensors").tensors.at("e").shape() == Shape{0, 3});
}

// ---- nn: layers and functional ----

TEST_CASE("sweep: layer constructors and forwards reject bad arguments", "[sweep]") {
  CHECK_INVALID(nn::Linear(-1, 3), "Linear", "-1");
  CHECK_INVALID(nn::Linear(3, -2), "Linear", "-2");
  CHECK_INVALID(nn::Embedding(-4, 2), "Embedding", "-4");
  CHECK_INVALID(nn::Embedding(4, -2), "Embedding", "-2");
  CHECK_INVALID(nn::LayerNorm(-3), "LayerNorm", "-3");
  CHECK_INVALID(nn::Dropout(1.5), "Dropout", "1.5");
  CHECK_INVALID(nn::Dropout(-0.1), "Dropout", "-0.1");
  CHECK_INVALID(nn::Dropout(kNaN), "Dropout", "nan");
  CHECK_INVALID(nn::GELU("bogus"), "GELU", "bogus");

  nn::Linear linear(4, 3);
  CHECK_INVALID(linear.forward(Tensor::ones({2, 5})), "[2, 5]", "[3, 4]");
  CHECK_INVALID(linear.forward(Tensor::full({}, 1.0)), "[]");
  CHECK_INVALID(linear.forward(Tensor::ones({2, 4}, DType::Int64)), "int64");

  nn::Embedding embedding(10, 3);
  auto ids = [](std::vector<int64_t> v) {
    const int64_t n = int64_t(v.size());
    return Tensor::from_vector(v, {n});
  };
  CHECK_INVALID(embedding.forward(ids({1, 10})), "10");
  CHECK_INVALID(embedding.forward(ids({-1})), "-1");
  CHECK_INVALID(embedding.forward(Tensor::zeros({2})), "float32");

  nn::LayerNorm norm(4);
  CHECK_INVALID(norm.forward(Tensor::ones({2, 5})), "[2, 5]", "4");
  CHECK_INVALID(norm.forward(Tensor::full({}, 1.0)), "[]");

  auto list = std::make_shared<nn::ModuleList>();
  list->push_back(std::make_shared<nn::ReLU>());
  CHECK_INVALID(list->at<nn::Linear>(0), "0");
  CHECK_INVALID((*list)[3], "3");
  nn::Sequential seq(std::make_shared<nn::Linear>(4, 3), std::make_shared<nn::ReLU>());
  CHECK_INVALID(seq[2], "2");
  CHECK_INVALID(seq.forward(Tensor::ones({2, 3})), "[2, 3]");
}

TEST_CASE("sweep: functional ops reject bad shapes, dims, dtypes and values", "[sweep]") {
  const Tensor x = t23();
  CHECK_INVALID(F::softmax(x, 2), "softmax", "2");
  CHECK_INVALID(F::log_softmax(x, -3), "log_softmax", "-3");
  CHECK_INVALID(F::softmax(x.to(DType::Int64), 1), "softmax", "int64");
  CHECK_INVALID(F::relu(x.to(DType::Int64)), "relu", "int64");
  CHECK_INVALID(F::gelu(x.to(DType::Int64)), "gelu", "int64");
  CHECK_INVALID(F::layer_norm(x, {4}), "layer_norm", "[4]", "[2, 3]");
  CHECK_INVALID(F::layer_norm(x, {3}, Tensor::ones({4})), "layer_norm", "[4]");
  CHECK_INVALID(F::layer_norm(x, {3}, Tensor::ones({3}), Tensor::ones({2})), "layer_norm", "[2]");
  CHECK_INVALID(F::layer_norm(x, {}), "layer_norm", "[]");
  CHECK_INVALID(F::dropout(x, 1.5, true), "dropout", "1.5");
  CHECK_INVALID(F::dropout(x, kNaN, true), "dropout", "nan");
  CHECK_INVALID(F::linear(x, Tensor::ones({2, 4})), "linear", "[2, 3]", "[2, 4]");
  CHECK_INVALID(F::linear(x, Tensor::ones({4, 3}), Tensor::ones({3})), "linear", "[3]");
  CHECK_INVALID(F::embedding(Tensor::from_vector(std::vector<int64_t>{5}, {1}), x), "embedding",
                "5");
  CHECK_INVALID(F::embedding(Tensor::zeros({1}), x), "embedding", "float32");
  CHECK_INVALID(F::mse_loss(x, Tensor::ones({3, 2})), "mse_loss", "[2, 3]", "[3, 2]");

  const Tensor logits = Tensor::zeros({2, 5});
  auto targets = [](std::vector<int64_t> v) {
    const int64_t n = int64_t(v.size());
    return Tensor::from_vector(v, {n});
  };
  CHECK_INVALID(F::cross_entropy(logits, targets({1, 2, 3})), "cross_entropy", "[2, 5]", "[3]");
  CHECK_INVALID(F::cross_entropy(logits, targets({1, 5})), "cross_entropy", "5");
  CHECK_INVALID(F::cross_entropy(logits, targets({-1, 0})), "cross_entropy", "-1");
  CHECK_INVALID(F::cross_entropy(logits, Tensor::zeros({2})), "cross_entropy", "float32");
  CHECK_INVALID(F::cross_entropy(Tensor::zeros({5}), targets({1})), "cross_entropy", "[5]");

  const Tensor q = Tensor::ones({2, 4, 8});
  CHECK_INVALID(F::scaled_dot_product_attention(q, Tensor::ones({2, 4, 7}), q),
                "scaled_dot_product_attention", "[2, 4, 7]");
  CHECK_INVALID(F::scaled_dot_product_attention(q, q, Tensor::ones({2, 5, 8})),
                "scaled_dot_product_attention", "[2, 5, 8]");
  CHECK_INVALID(
      F::scaled_dot_product_attention(Tensor::ones({8}), Tensor::ones({8}), Tensor::ones({8})),
      "scaled_dot_product_attention", "[8]");
}

// ---- nn: Module and safetensors ----

TEST_CASE("sweep: Module registration and load_state_dict reject bad input", "[sweep]") {
  TwoLayer model(3, 4);
  CHECK_INVALID(model.register_parameter("fc1", Tensor::ones({1})), "fc1");
  CHECK_INVALID(model.register_parameter("a.b", Tensor::ones({1})), "a.b");
  CHECK_INVALID(model.register_parameter("", Tensor::ones({1})), "register_parameter");
  CHECK_INVALID(model.register_parameter("u", Tensor()), "u");
  CHECK_INVALID(model.register_buffer("x.y", Tensor::ones({1})), "x.y");
  CHECK_INVALID(model.register_module("norm", std::make_shared<nn::ReLU>()), "norm");
  CHECK_INVALID(model.register_module("r", std::shared_ptr<nn::ReLU>()), "r");
  CHECK_INVALID(model.to(DType::Int64), "int64");

  auto state = model.state_dict();
  auto missing = state;
  missing.erase("fc1.bias");
  CHECK_INVALID(model.load_state_dict(missing), "fc1.bias");
  auto unexpected = state;
  unexpected["fc2.weight"] = Tensor::ones({2});
  CHECK_INVALID(model.load_state_dict(unexpected), "fc2.weight");
  auto wrong_shape = state;
  wrong_shape["fc1.weight"] = Tensor::ones({3, 4});
  CHECK_INVALID(model.load_state_dict(wrong_shape), "fc1.weight", "[3, 4]", "[4, 3]");
  CHECK_INVALID(model.load_state_dict(wrong_shape, /*strict=*/false), "fc1.weight", "[3, 4]");
  auto undefined = state;
  undefined["norm.weight"] = Tensor();
  CHECK_INVALID(model.load_state_dict(undefined), "norm.weight");
}

TEST_CASE("sweep: safetensors files: missing, foreign or mismatched", "[sweep]") {
  TempDir dir;
  TwoLayer model(3, 4);
  CHECK_FILE_ERROR(nn::load_safetensors(dir / "absent.safetensors"), "absent.safetensors");
  CHECK_FILE_ERROR(nn::load_state_dict_file(model, dir / "absent.safetensors"),
                   "absent.safetensors");
  CHECK_FILE_ERROR(nn::load_safetensors(dir / ""), "load_safetensors");
  std::ofstream(dir / "text.safetensors") << "definitely not safetensors";
  CHECK_FILE_ERROR(nn::load_safetensors(dir / "text.safetensors"), "text.safetensors");
  CHECK_FILE_ERROR(nn::save_safetensors(dir / "no/such/dir/x.safetensors", {}), "no/such/dir");
  CHECK_INVALID(nn::save_safetensors(dir / "m.safetensors", {{"__metadata__", Tensor::ones({1})}}),
                "__metadata__");

  // Another model's weights: a valid file that does not fit is a bad argument.
  TwoLayer other(3, 5);
  nn::save_state_dict(other, dir / "other.safetensors");
  CHECK_INVALID(nn::load_state_dict_file(model, dir / "other.safetensors"), "fc1.bias", "[5]",
                "[4]");
}

// ---- optim ----

TEST_CASE("sweep: optimizers reject NaN, Inf and negative hyperparameters", "[sweep]") {
  const std::vector<Tensor> params = {Tensor::ones({2, 2}).requires_grad_()};
  using namespace optim;
  CHECK_INVALID(AdamW(params, {}), "lr");
  CHECK_INVALID(AdamW(params, {.lr = kNaN}), "lr", "nan");
  CHECK_INVALID(AdamW(params, {.lr = -1e-3}), "lr", "-0.001");
  CHECK_INVALID(AdamW(params, {.lr = kInf}), "lr", "inf");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .betas = {1.5, 0.99}}), "beta", "1.5");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .betas = {0.9, kNaN}}), "beta", "nan");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .betas = {-0.1, 0.99}}), "beta", "-0.1");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .weight_decay = -1.0}), "weight_decay", "-1");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .weight_decay = kNaN}), "weight_decay", "nan");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .weight_decay = kInf}), "weight_decay", "inf");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .eps = -1e-8}), "eps", "-1e-08");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .eps = kNaN}), "eps", "nan");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .max_lr = kNaN}), "max_lr", "nan");
  CHECK_INVALID(AdamW(params, {.lr = 1e-3, .max_lr = -1.0}), "max_lr", "-1");

  CHECK_INVALID(SGD(params, {.lr = kNaN}), "lr", "nan");
  CHECK_INVALID(SGD(params, {.lr = 0.1, .momentum = -0.5}), "momentum", "-0.5");
  CHECK_INVALID(SGD(params, {.lr = 0.1, .momentum = kNaN}), "momentum", "nan");
  CHECK_INVALID(Adam(params, {.lr = kInf}), "lr", "inf");
  CHECK_INVALID(Adam(params, {.lr = 1e-3, .betas = {0.9, 1.0}}), "beta", "1.0");
  CHECK_INVALID(Adan(params, {.lr = 1e-3, .betas = {0.98, 0.92, 2.0}}), "beta", "2.0");
  CHECK_INVALID(Adan(params, {.lr = 1e-3, .eps = kNaN}), "eps", "nan");
  CHECK_INVALID(Lion(params, {.lr = 1e-4, .betas = {kNaN, 0.99}}), "beta", "nan");
  CHECK_INVALID(Lion(params, {.lr = -1.0}), "lr", "-1");
  CHECK_INVALID(RAdam(params, {.lr = 1e-3, .weight_decay = kNaN}), "weight_decay", "nan");
  CHECK_INVALID(Ranger(params, {.lr = 1e-3, .k = 0}), "k", "0");
  CHECK_INVALID(Ranger(params, {.lr = 1e-3, .k = -3}), "k=-3");
  CHECK_INVALID(Ranger(params, {.lr = 1e-3, .alpha = 1.5}), "alpha", "1.5");
  CHECK_INVALID(Ranger(params, {.lr = 1e-3, .alpha = kNaN}), "alpha", "nan");
  CHECK_INVALID(StableAdamW(params, {.lr = 1e-3, .eps = kNaN}), "eps", "nan");
  CHECK_INVALID(StableAdamW(params, {.lr = kNaN}), "lr", "nan");

  // Per-group values too.
  CHECK_INVALID(AdamW(std::vector<ParamGroup>{{.params = params, .lr = kNaN}}, {.lr = 1e-3}), "lr",
                "nan");
  CHECK_INVALID(
      AdamW(std::vector<ParamGroup>{{.params = params, .weight_decay = -2.0}}, {.lr = 1e-3}),
      "weight_decay", "-2");
}

TEST_CASE("sweep: optimizers reject bad parameter lists", "[sweep]") {
  using namespace optim;
  const Tensor p = Tensor::ones({2}).requires_grad_();
  CHECK_INVALID(AdamW(std::vector<Tensor>{}, {.lr = 1e-3}), "empty");
  CHECK_INVALID(AdamW(std::vector<Tensor>{Tensor()}, {.lr = 1e-3}), "defined");
  CHECK_INVALID(
      AdamW(std::vector<Tensor>{Tensor::from_vector(std::vector<int64_t>{1}, {1})}, {.lr = 1e-3}),
      "int64");
  CHECK_INVALID(AdamW(std::vector<Tensor>{p * 2.0}, {.lr = 1e-3}), "leaf");
  CHECK_INVALID(AdamW(std::vector<ParamGroup>{{.params = {p}}, {.params = {p}}}, {.lr = 1e-3}),
                "more than once");
}

TEST_CASE("sweep: optimizer methods reject foreign parameters and bad groups", "[sweep]") {
  using namespace optim;
  Tensor p = Tensor::ones({2}).requires_grad_();
  Tensor foreign = Tensor::ones({2}).requires_grad_();
  foreign.set_grad(Tensor::ones({2}));
  AdamW released({p}, {.lr = 1e-3, .gradient_release = true});
  CHECK_INVALID(released.step(foreign), "not one of this optimizer's parameters");
  CHECK_INVALID(released.step(Tensor()), "step");
  CHECK_INVALID(released.step(p), "no gradient");
  CHECK_INVALID(released.zero_grad(foreign), "not one of this optimizer's parameters");

  AdamW plain({p}, {.lr = 1e-3});
  p.set_grad(Tensor::ones({2}));
  CHECK_INVALID(plain.step(p), "gradient_release");
  CHECK_INVALID(plain.lr(1), "group 1");
  CHECK_INVALID(plain.set_lr(1, 1e-3), "group 1");
  CHECK_INVALID(plain.set_lr(0, kNaN), "nan");
  CHECK_INVALID(plain.set_lr(0, -1.0), "-1");
  CHECK_INVALID(plain.weight_decay(7), "group 7");
  CHECK_INVALID(plain.set_weight_decay(0, -0.5), "-0.5");
  CHECK_INVALID(plain.set_weight_decay(0, kNaN), "nan");
  CHECK_INVALID(plain.group_params(3), "group 3");
}

TEST_CASE("sweep: optimizer load rejects missing, foreign and mismatched files", "[sweep]") {
  using namespace optim;
  TempDir dir;
  Tensor p = Tensor::ones({2, 3}).requires_grad_();
  AdamW adamw({p}, {.lr = 1e-3});
  p.set_grad(Tensor::ones({2, 3}));
  adamw.step();
  adamw.save(dir / "adamw.safetensors");

  CHECK_FILE_ERROR(adamw.load(dir / "absent.safetensors"), "absent.safetensors");
  TwoLayer model(3, 4);
  nn::save_state_dict(model, dir / "model.safetensors");
  CHECK_FILE_ERROR(adamw.load(dir / "model.safetensors"), "model.safetensors");

  Tensor q = Tensor::ones({2, 3}).requires_grad_();
  SGD sgd({q}, {.lr = 0.1, .momentum = 0.9});
  CHECK_INVALID(sgd.load(dir / "adamw.safetensors"), "AdamW", "SGD");

  Tensor transposed = Tensor::ones({3, 2}).requires_grad_();
  AdamW other_shape({transposed}, {.lr = 1e-3});
  CHECK_INVALID(other_shape.load(dir / "adamw.safetensors"), "[2, 3]", "[3, 2]");

  Tensor bf16 = Tensor::ones({2, 3}, DType::BFloat16).requires_grad_();
  AdamW other_dtype({bf16}, {.lr = 1e-3});
  CHECK_INVALID(other_dtype.load(dir / "adamw.safetensors"), "float32", "bfloat16");

  AdamW two_params({Tensor::ones({2, 3}).requires_grad_(), Tensor::ones({1}).requires_grad_()},
                   {.lr = 1e-3});
  CHECK_INVALID(two_params.load(dir / "adamw.safetensors"), "1 parameters", "2");
}

TEST_CASE("sweep: schedulers reject bad step counts and factors", "[sweep]") {
  using namespace optim;
  AdamW opt({Tensor::ones({2}).requires_grad_()}, {.lr = 1e-3});
  CHECK_INVALID(LinearWarmup(opt, -1), "-1");
  CHECK_INVALID(LinearWarmup(opt, 10, kNaN), "nan");
  CHECK_INVALID(LinearWarmup(opt, 10, -0.5), "-0.5");
  CHECK_INVALID(CosineAnnealing(opt, 0), "0");
  CHECK_INVALID(CosineAnnealing(opt, 10, kNaN), "nan");
  CHECK_INVALID(WarmupCosine(opt, 10, 5), "WarmupCosine", "5");
  CHECK_INVALID(LinearWarmup(opt, 10, 1.5), "LinearWarmup", "start_factor=1.5");
  CHECK_INVALID(CosineAnnealing(opt, 10, kInf), "eta_min", "inf");
  CHECK_INVALID(WarmupCosine(opt, 10, 20, -1.0), "WarmupCosine", "eta_min=-1.0");
  CHECK_INVALID(WarmupCosine(opt, 10, 20, 0.0, 2.0), "WarmupCosine", "warmup_start_factor=2.0");
  LinearWarmup warmup(opt, 10);
  CHECK_INVALID(warmup.set_last_step(-3), "-3");
}

// ---- utils ----

TEST_CASE("sweep: utilities reject bad arguments", "[sweep]") {
  TwoLayer model(3, 4);
  CHECK_INVALID(utils::param_groups_weight_decay(model, kNaN), "weight_decay", "nan");
  CHECK_INVALID(utils::param_groups_weight_decay(model, -1.0), "weight_decay", "-1");
  CHECK_INVALID(utils::param_groups_weight_decay(model, kInf), "weight_decay", "inf");

  CHECK_INVALID(utils::to_low_precision(model, {.dtype = DType::Int64}), "int64");
  // Rejected options leave the model as it was.
  CHECK(model.fc1->weight.dtype() == DType::Float32);
  CHECK_INVALID(
      utils::to_low_precision(model, {.dtype = DType::BFloat16, .device = unusable_cuda()}),
      "cuda");

  optim::AdamW plain(model.parameters(), {.lr = 1e-3});
  CHECK_INVALID(utils::prepare_for_gradient_release(model, plain), "gradient_release");
  optim::AdamW released(model.parameters(), {.lr = 1e-3, .gradient_release = true});
  utils::prepare_for_gradient_release(model, released);
  CHECK_INVALID(utils::prepare_for_gradient_release(model, released), "hook");
  utils::remove_gradient_release(model);

  // An empty warning handler cannot turn a warning into a crash.
  WarningHandler previous = set_warning_handler(nullptr);
  CHECK_NOTHROW(utils::remove_gradient_release(model));  // warns: no hooks left to remove
  set_warning_handler(previous);
}
