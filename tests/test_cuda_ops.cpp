// Every op on CUDA against the CPU for the same inputs, forward and backward. Needs a device; CTest
// runs these as the `cuda_suite_needs_a_gpu` test (label cuda), which is skipped without one.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "cuda_test_utils.hpp"

using namespace optimi;
using namespace optimi::testing;
namespace F = optimi::nn::functional;

namespace {

Tensor randn(Shape shape, uint64_t seed) {
  manual_seed(seed);
  return Tensor::randn(std::move(shape));
}

Tensor positive(Shape shape, uint64_t seed) {
  manual_seed(seed);
  return Tensor::uniform(std::move(shape), 0.5, 2.0);
}

const std::vector<DType> kFloatTypes = {DType::Float32, DType::BFloat16, DType::Float16,
                                        DType::Float64};

}  // namespace

TEST_CASE("cuda: copies between host and device in every dtype", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor x = randn({3, 5, 7}, 1) * 10.0;
  for (DType from : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int64,
                     DType::Bool}) {
    for (DType to : {DType::Float32, DType::Float64, DType::BFloat16, DType::Float16, DType::Int64,
                     DType::Bool}) {
      INFO(dtype_name(from) << " -> " << dtype_name(to));
      const Tensor src = x.to(from);
      Tensor on_gpu = src.to(to, gpu());
      REQUIRE(on_gpu.device() == gpu());
      REQUIRE(on_gpu.to(Device::cpu()).to_vector<double>() == src.to(to).to_vector<double>());
      // Strided on both sides, converted on the device.
      Tensor strided_src = src.to(gpu()).transpose(0, 2);
      Tensor dst = Tensor::zeros({5, 7, 3}, to, gpu()).permute({2, 0, 1});
      dst.copy_(strided_src.transpose(0, 2));
      REQUIRE(dst.to(Device::cpu()).to_vector<double>() == src.to(to).to_vector<double>());
    }
  }
}

TEST_CASE("cuda: broadcast copies, fills, factories and item", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  Tensor dst = Tensor::zeros({4, 3}, DType::Float32, gpu());
  dst.copy_(Tensor::from_vector({1.0f, 2.0f, 3.0f}, {3}));  // host -> device, broadcast
  REQUIRE(dst.to_vector<float>() == std::vector<float>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3});
  Tensor host = Tensor::zeros({2, 4, 3});
  host.copy_(dst);  // device -> host, broadcast
  REQUIRE(host.sum().item() == 48.0);
  dst.slice(0, 1, 3).fill_(-1.5);
  REQUIRE(dst.sum().item() == 3.0);  // rows of 6, two of them now -1.5 each
  REQUIRE(Tensor::full({2, 2}, 0.1, DType::BFloat16, gpu()).to_vector<double>() ==
          Tensor::full({2, 2}, 0.1, DType::BFloat16).to_vector<double>());
  REQUIRE(Tensor::arange(5, DType::Int64, gpu()).sum().item() == 10.0);
  manual_seed(3);
  const Tensor a = Tensor::randn({8}, DType::Float32, gpu());
  manual_seed(3);
  REQUIRE(a.to_vector<float>() == Tensor::randn({8}).to_vector<float>());
  REQUIRE(Tensor::full({}, 2.5, DType::Float32, gpu()).item() == 2.5);
  REQUIRE(Tensor::from_vector(std::vector<int64_t>{4, -2}, {2}, gpu()).to_vector<int64_t>() ==
          std::vector<int64_t>{4, -2});
}

TEST_CASE("cuda: element-wise ops with broadcasting and strides", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor a = randn({2, 3, 4}, 1);
  const Tensor b = randn({3, 1}, 2);
  const Tensor p = positive({2, 3, 4}, 3);
  for (DType t : kFloatTypes) {
    INFO(dtype_name(t));
    const double r = rtol_of(t), at = r;
    check_against_cpu([](const auto& x) { return x[0] + x[1]; }, {a, b}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0] - x[1] * x[0]; }, {a, b}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0] / x[1]; }, {a, p}, t, r, at);
    check_against_cpu([](const auto& x) { return maximum(x[0], x[1]); }, {a, b}, t, r, at);
    check_against_cpu([](const auto& x) { return 2.0 - x[0] * 3.0 + 1.0 / x[1]; }, {a, p}, t, r,
                      at);
    check_against_cpu([](const auto& x) { return x[0].transpose(0, 2) * 2.0; }, {a}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0].exp() + x[1].log() + x[1].sqrt(); }, {a, p},
                      t, r, at);
    check_against_cpu([](const auto& x) { return x[1].rsqrt() + x[0].tanh() + x[0].abs(); }, {a, p},
                      t, r, at);
    check_against_cpu([](const auto& x) { return -x[0].pow(2.0) + x[1].pow(1.5); }, {a, p}, t, r,
                      at);
    check_against_cpu([](const auto& x) { return F::relu(x[0]) + F::sigmoid(x[0]); }, {a}, t, r,
                      at);
    check_against_cpu([](const auto& x) { return F::silu(x[0]) * F::mish(x[0]); }, {a}, t, r, at);
    check_against_cpu(
        [](const auto& x) {
          return F::gelu(x[0]) + F::gelu(x[0], nn::functional::GeluApproximation::Tanh);
        },
        {a}, t, r, at);
  }
  const Tensor i = Tensor::from_vector(std::vector<int64_t>{1, -2, 3, 7}, {4});
  check_against_cpu([](const auto& x) { return x[0] * 3.0 + x[0] - x[0].abs(); }, {i},
                    DType::Float32, 0, 0, false);
}

TEST_CASE("cuda: reductions", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor a = randn({5, 6, 7}, 4);
  for (DType t : kFloatTypes) {
    INFO(dtype_name(t));
    const double r = rtol_of(t), at = 10 * r;
    check_against_cpu([](const auto& x) { return x[0].sum(); }, {a}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0].mean(); }, {a}, t, r, at);
    for (int64_t d = 0; d < 3; ++d) {
      check_against_cpu([d](const auto& x) { return x[0].sum(d); }, {a}, t, r, at);
      check_against_cpu([d](const auto& x) { return x[0].mean(d, true); }, {a}, t, r, at);
      check_against_cpu([d](const auto& x) { return x[0].max(d); }, {a}, t, r, at);
      check_against_cpu([d](const auto& x) { return x[0].transpose(0, 2).sum(d); }, {a}, t, r, at);
    }
    check_against_cpu([](const auto& x) { return x[0].max(); }, {a}, t, r, at);
  }
  const Tensor big = randn({1 << 20}, 5);
  check_against_cpu([](const auto& x) { return x[0].sum(); }, {big}, DType::Float32, 1e-6, 1e-3);
  const Tensor i = Tensor::from_vector(std::vector<int64_t>{1, -2, 3, 7, 5, 5}, {2, 3});
  check_against_cpu([](const auto& x) { return x[0].sum(1); }, {i}, DType::Float32, 0, 0, false);
  check_against_cpu([](const auto& x) { return x[0].sum(0); }, {i}, DType::Float32, 0, 0, false);
  check_against_cpu([](const auto& x) { return x[0].max(0); }, {i}, DType::Float32, 0, 0, false);
  // Long reduced dims over few columns (a bias gradient): the rows are split across blocks.
  const Tensor tall = randn({3001, 45}, 6), deep = randn({2, 1000, 3, 70}, 7);
  for (DType t : {DType::Float32, DType::BFloat16}) {
    const double r = rtol_of(t), at = 10 * r;
    check_against_cpu([](const auto& x) { return x[0].sum(0); }, {tall}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0].max(0); }, {tall}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0].sum(1); }, {deep}, t, r, at);
    check_against_cpu([](const auto& x) { return x[0].max(1); }, {deep}, t, r, at);
  }
  // NaN wins max wherever it sits among the split rows.
  Tensor with_nan = randn({3001, 5}, 8);
  with_nan.select(0, 2000).select(0, 3).fill_(NAN);
  const std::vector<float> column_max = with_nan.to(gpu()).max(0).to_vector<float>();
  REQUIRE(std::isnan(column_max[3]));
  REQUIRE_FALSE(std::isnan(column_max[2]));
}

TEST_CASE("cuda: matmul through cuBLAS", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor a2 = randn({7, 5}, 1), b2 = randn({5, 9}, 2);
  const Tensor a3 = randn({4, 7, 5}, 3), b3 = randn({4, 5, 9}, 4);
  const Tensor a4 = randn({2, 1, 7, 5}, 5), b4 = randn({3, 5, 9}, 6);
  const Tensor v = randn({5}, 7);
  for (DType t : kFloatTypes) {
    INFO(dtype_name(t));
    const double r = 2 * rtol_of(t), at = 2 * rtol_of(t);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {a2, b2}, t, r, at);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {a3, b3}, t, r, at);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {a4, b4}, t, r, at);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {a3, b2}, t, r, at);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {v, b3}, t, r, at);
    check_against_cpu([](const auto& x) { return matmul(x[0], x[1]); }, {a3, v}, t, r, at);
    // Transposed operands are read in place (op T), broadcast batch dims with stride 0.
    check_against_cpu(
        [](const auto& x) { return matmul(x[1].transpose(-1, -2), x[0].transpose(-1, -2)); },
        {a3, b3}, t, r, at);
    check_against_cpu([](const auto& x) { return F::linear(x[0], x[1], x[2]); },
                      {a3, randn({9, 5}, 8), randn({9}, 9)}, t, r, at);
  }
  // Empty inner dim: zeros.
  const Tensor e = matmul(Tensor::ones({3, 0}, DType::Float32, gpu()),
                          Tensor::ones({0, 2}, DType::Float32, gpu()));
  REQUIRE(e.to_vector<float>() == std::vector<float>(6, 0.0f));
}

TEST_CASE("cuda: views, cat, split and index_select", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor a = randn({4, 6, 5}, 1), b = randn({4, 2, 5}, 2);
  const Tensor idx = Tensor::from_vector(std::vector<int64_t>{3, 0, 3, 1}, {4});
  for (DType t : {DType::Float32, DType::BFloat16}) {
    const double r = rtol_of(t);
    check_against_cpu([](const auto& x) { return cat({x[0], x[1]}, 1); }, {a, b}, t, r, r);
    check_against_cpu([](const auto& x) { return split(x[0], 4, 1)[1] * 2.0; }, {a}, t, r, r);
    check_against_cpu(
        [](const auto& x) {
          return x[0].slice(1, 1, 6, 2).permute({2, 0, 1});
        },
        {a}, t, r, r);
    check_against_cpu([](const auto& x) { return index_select(x[0], 0, x[1]); }, {a, idx}, t, r, r);
    check_against_cpu([](const auto& x) { return index_select(x[0], 1, x[1]); }, {a, idx}, t, r, r);
    check_against_cpu(
        [](const auto& x) {
          return x[0].select(2, 3).unsqueeze(0).expand({3, 4, 6});
        },
        {a}, t, r, r);
  }
  REQUIRE_THROWS_AS(index_select(a.to(gpu()), 0, idx), std::invalid_argument);  // index on cpu
  REQUIRE_THROWS_AS(index_select(a.to(gpu()), 0, (idx + 10.0).to(gpu())), std::invalid_argument);
  REQUIRE_THROWS_AS(a.to(gpu()) + a, std::invalid_argument);  // devices differ
}

TEST_CASE("cuda: softmax, log_softmax and layer_norm", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor x = randn({3, 5, 33}, 1) * 3.0;
  const Tensor w = randn({33}, 2), bias = randn({33}, 3);
  for (DType t : kFloatTypes) {
    INFO(dtype_name(t));
    const double r = 2 * rtol_of(t), at = 2 * rtol_of(t);
    for (int64_t d : {-1, 1, 0}) {
      check_against_cpu([d](const auto& v) { return F::softmax(v[0], d); }, {x}, t, r, at);
      check_against_cpu([d](const auto& v) { return F::log_softmax(v[0], d); }, {x}, t, r, at);
    }
    check_against_cpu([](const auto& v) { return F::layer_norm(v[0], {33}, v[1], v[2]); },
                      {x, w, bias}, t, r, 4 * at);
    check_against_cpu(
        [](const auto& v) {
          return F::layer_norm(v[0], {5, 33});
        },
        {x}, t, r, 4 * at);
  }
  // A float32 LayerNorm on bfloat16 activations, as to_low_precision leaves them.
  check_against_cpu(
      [](const auto& v) { return F::layer_norm(v[0].to(DType::BFloat16), {33}, v[1], v[2]); },
      {x, w, bias}, DType::Float32, 2e-2, 2e-2);
  // Many rows: the weight gradients reduce over several chunks.
  check_against_cpu([](const auto& v) { return F::layer_norm(v[0], {8}, v[1], v[2]); },
                    {randn({1000, 8}, 4), randn({8}, 5), randn({8}, 6)}, DType::Float32, 1e-4,
                    1e-4);
}

TEST_CASE("cuda: embedding, cross_entropy and mse_loss", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor weight = randn({10, 6}, 1);
  const Tensor indices = Tensor::from_vector(std::vector<int64_t>{3, 3, 0, 9, 3, 1}, {2, 3});
  const Tensor logits = randn({6, 11}, 2) * 2.0;
  const Tensor targets = Tensor::from_vector(std::vector<int64_t>{0, 10, 5, 5, 2, 7}, {6});
  const Tensor a = randn({4, 5}, 3), b = randn({4, 5}, 4);
  for (DType t : kFloatTypes) {
    INFO(dtype_name(t));
    const double r = 2 * rtol_of(t), at = 2 * rtol_of(t);
    check_against_cpu([](const auto& v) { return F::embedding(v[1], v[0]); }, {weight, indices}, t,
                      r, at);
    check_against_cpu([](const auto& v) { return F::cross_entropy(v[0], v[1]); }, {logits, targets},
                      t, r, at);
    check_against_cpu(
        [](const auto& v) {
          return F::cross_entropy(v[0].reshape({2, 3, 11}), v[1].reshape({2, 3}));
        },
        {logits, targets}, t, r, at);
    check_against_cpu([](const auto& v) { return F::mse_loss(v[0], v[1]); }, {a, b}, t, r, at);
  }
  REQUIRE_THROWS_AS(F::cross_entropy(logits.to(gpu()), (targets + 20.0).to(gpu())),
                    std::invalid_argument);
  REQUIRE_THROWS_AS(F::embedding((indices - 5.0).to(gpu()), weight.to(gpu())),
                    std::invalid_argument);
}

TEST_CASE("cuda: dropout draws the CPU's mask for the same seed", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const Tensor x = randn({7, 129}, 1);
  for (DType t : {DType::Float32, DType::BFloat16}) {
    check_against_cpu(
        [](const auto& v) {
          manual_seed(42);
          return F::dropout(v[0], 0.3, true);
        },
        {x}, t, 0, 0);
  }
  manual_seed(42);
  const Tensor y = F::dropout(Tensor::ones({100000}, DType::Float32, gpu()), 0.25, true);
  const double kept = (y / (1.0 / 0.75)).sum().item() / 100000.0;
  REQUIRE(kept == Approx(0.75).margin(0.01));
  // The generator advanced as on the CPU: the next draw matches too.
  manual_seed(42);
  F::dropout(Tensor::ones({100000}), 0.25, true);
  const double next_cpu = Tensor::randn({1}).item();
  manual_seed(42);
  F::dropout(Tensor::ones({100000}, DType::Float32, gpu()), 0.25, true);
  REQUIRE(Tensor::randn({1}).item() == next_cpu);
}

TEST_CASE("cuda: scaled_dot_product_attention", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  // Heads split out of a fused projection: strided views, read in place.
  const Tensor qkv = randn({2, 9, 3 * 2 * 8}, 1);
  const auto heads = [](const Tensor& t, int64_t part) {
    return t.slice(2, part * 16, (part + 1) * 16).reshape({2, 9, 2, 8}).transpose(1, 2);
  };
  for (DType t : kFloatTypes) {
    for (bool causal : {true, false}) {
      INFO(dtype_name(t) << (causal ? " causal" : " full"));
      const double r = 4 * rtol_of(t), at = 4 * rtol_of(t);
      check_against_cpu(
          [&](const auto& v) {
            return F::scaled_dot_product_attention(heads(v[0], 0), heads(v[0], 1), heads(v[0], 2),
                                                   causal);
          },
          {qkv}, t, r, at);
    }
  }
  // More queries than keys, a value width of its own, an explicit scale.
  check_against_cpu(
      [](const auto& v) { return F::scaled_dot_product_attention(v[0], v[1], v[2], true, 0.3); },
      {randn({3, 7, 4}, 2), randn({3, 5, 4}, 3), randn({3, 5, 6}, 4)}, DType::Float32, 1e-4, 1e-4);
  check_against_cpu(
      [](const auto& v) { return F::scaled_dot_product_attention(v[0], v[1], v[2], false); },
      {randn({130, 4}, 5), randn({200, 4}, 6), randn({200, 3}, 7)}, DType::Float32, 1e-4, 1e-4);
}

TEST_CASE("cuda: modules move with Module::to and train on the device", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  manual_seed(0);
  nn::Sequential cpu_model;
  cpu_model.push_back(std::make_shared<nn::Linear>(6, 16));
  cpu_model.push_back(std::make_shared<nn::GELU>());
  cpu_model.push_back(std::make_shared<nn::LayerNorm>(16));
  cpu_model.push_back(std::make_shared<nn::Linear>(16, 3));
  manual_seed(0);
  nn::Sequential gpu_model;
  gpu_model.push_back(std::make_shared<nn::Linear>(6, 16));
  gpu_model.push_back(std::make_shared<nn::GELU>());
  gpu_model.push_back(std::make_shared<nn::LayerNorm>(16));
  gpu_model.push_back(std::make_shared<nn::Linear>(16, 3));
  const Tensor first = gpu_model.parameters().front();
  gpu_model.to(gpu());
  REQUIRE(first.device() == gpu());  // handles see the move
  const Tensor x = randn({10, 6}, 1);
  const Tensor y = Tensor::from_vector(std::vector<int64_t>{0, 1, 2, 0, 1, 2, 0, 1, 2, 0}, {10});
  F::cross_entropy(cpu_model(x), y).backward();
  F::cross_entropy(gpu_model(x.to(gpu())), y.to(gpu())).backward();
  const auto cpu_params = cpu_model.named_parameters();
  const auto gpu_params = gpu_model.named_parameters();
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    require_close(gpu_params[i].second.grad(), cpu_params[i].second.grad(), 1e-4, 1e-5,
                  cpu_params[i].first);
  }
}
