// The optimizers' multi-tensor CUDA kernels against the CPU loops (same trajectories), gradient
// release on the device, the caching allocator, and the utilities with a CUDA device. Needs a
// device; CTest runs these as the `cuda_suite_needs_a_gpu` test (label cuda), skipped without
// one.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_test_utils.hpp"
#include "optim_factory.hpp"

using namespace optimi;
using namespace optimi::testing;
using nlohmann::json;

namespace {

// Hyperparameters that exercise each optimizer's decay and variants.
json options_for(const std::string& name, bool decoupled) {
  json o = {{"lr", 1e-2}, {"weight_decay", 1e-2}};
  if (name == "SGD") o["momentum"] = 0.9;
  if (name == "Ranger") o["k"] = 2;
  if (decoupled) {
    o["decouple_lr"] = true;
    o["max_lr"] = 2e-2;
  }
  return o;
}

// Parameters in two groups (the second without weight decay), one of them longer than a chunk of
// the CUDA kernels, trained for `steps` steps on random gradients. Returns the final values.
std::vector<std::vector<double>> trajectory(const std::string& name, const json& options,
                                            DType dtype, Device device, int steps) {
  const std::vector<Shape> shapes = {{300}, {17, 33}, {10000}, {1}};
  std::vector<Tensor> params;
  for (size_t i = 0; i < shapes.size(); ++i) {
    manual_seed(100 + i);
    params.push_back(Tensor::randn(shapes[i]).to(dtype, device).requires_grad_());
  }
  std::vector<optim::ParamGroup> groups = {{{params[0], params[1]}, {}, {}},
                                           {{params[2], params[3]}, {}, 0.0}};
  auto opt = make_optimizer(name, options, groups);
  for (int s = 0; s < steps; ++s) {
    for (size_t i = 0; i < params.size(); ++i) {
      manual_seed(1000 * s + i);
      params[i].set_grad(Tensor::randn(shapes[i]).to(dtype, device));
    }
    opt->step();
  }
  std::vector<std::vector<double>> out;
  for (const Tensor& p : params) {
    REQUIRE(p.device() == device);
    out.push_back(p.to_vector<double>());
  }
  return out;
}

void require_same(const std::vector<std::vector<double>>& cuda,
                  const std::vector<std::vector<double>>& cpu, double rtol) {
  for (size_t t = 0; t < cpu.size(); ++t) {
    for (size_t i = 0; i < cpu[t].size(); ++i) {
      if (std::abs(cuda[t][i] - cpu[t][i]) > rtol * std::abs(cpu[t][i]) + 1e-30) {
        FAIL("tensor " << t << " element " << i << ": cuda " << cuda[t][i] << " cpu " << cpu[t][i]);
      }
    }
  }
}

}  // namespace

TEST_CASE("cuda: every optimizer follows the CPU trajectory", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  for (const std::string& name : optimizer_names()) {
    for (bool decoupled : {false, true}) {
      for (DType dtype : {DType::Float32, DType::BFloat16}) {
        INFO(name << (decoupled ? " decoupled" : "") << " " << dtype_name(dtype));
        const json o = options_for(name, decoupled);
        const auto cpu = trajectory(name, o, dtype, Device::cpu(), 6);
        const auto cuda = trajectory(name, o, dtype, gpu(), 6);
        // The kernels round every float32 operation as the CPU loops do (no contraction into
        // FMAs), so only StableAdamW's RMS, summed in another order, may differ by a rounding.
        const bool exact = name != "StableAdamW";
        require_same(cuda, cpu, exact ? 0.0 : (dtype == DType::Float32 ? 1e-5 : 1e-2));
      }
    }
  }
}

TEST_CASE("cuda: a group of more tensors than one launch holds", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  for (const std::string name : {"AdamW", "StableAdamW"}) {
    INFO(name);
    std::vector<std::vector<double>> results[2];
    for (int d = 0; d < 2; ++d) {
      const Device device = d == 0 ? Device::cpu() : gpu();
      std::vector<Tensor> params;
      for (int i = 0; i < 600; ++i) {
        manual_seed(i);
        params.push_back(Tensor::randn({37 + i % 5}).to(device).requires_grad_());
      }
      auto opt = make_optimizer(name, options_for(name, false), {{params, {}, {}}});
      for (int s = 0; s < 2; ++s) {
        for (size_t i = 0; i < params.size(); ++i) {
          manual_seed(7 * s + i);
          params[i].set_grad(Tensor::randn(params[i].shape()).to(device));
        }
        opt->step();
      }
      for (const Tensor& p : params) results[d].push_back(p.to_vector<double>());
    }
    require_same(results[1], results[0], name == "AdamW" ? 0.0 : 1e-5);
  }
}

TEST_CASE("cuda: gradient release steps each parameter on the device", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  std::vector<Tensor> weights[2];
  for (int d = 0; d < 2; ++d) {
    const Device device = d == 0 ? Device::cpu() : gpu();
    manual_seed(0);
    nn::Sequential model;
    model.push_back(std::make_shared<nn::Linear>(8, 16));
    model.push_back(std::make_shared<nn::Linear>(16, 4));
    utils::to_low_precision(model, {.dtype = DType::BFloat16, .device = device});
    optim::AdamW opt(model.parameters(), {.lr = 1e-2, .gradient_release = true});
    utils::prepare_for_gradient_release(model, opt);
    for (int s = 0; s < 4; ++s) {
      opt.set_optimizer_accumulation(s == 1);  // the state absorbs this step's gradients only
      // A loss whose gradients are exact on both devices (random bfloat16 constants), so the
      // trajectories compare bit for bit.
      Tensor loss;
      const std::vector<Tensor> params = model.parameters();
      for (size_t i = 0; i < params.size(); ++i) {
        manual_seed(10 * s + i);
        const Tensor c = Tensor::randn(params[i].shape(), DType::BFloat16, device);
        const Tensor term = (params[i] * c).to(DType::Float32).sum();
        loss = loss.defined() ? loss + term : term;
      }
      loss.backward();
      for (const Tensor& p : params) REQUIRE_FALSE(p.grad().defined());  // released
    }
    utils::remove_gradient_release(model);
    weights[d] = model.parameters();
  }
  for (size_t i = 0; i < weights[0].size(); ++i) {
    REQUIRE(weights[1][i].device() == gpu());
    require_close(weights[1][i], weights[0][i], 0, 0, "parameter " + std::to_string(i));
  }
}

TEST_CASE("cuda: to_low_precision casts and moves in one pass", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  // Embedding, Linear, LayerNorm; the embedding stays float32 and its output is cast to the
  // Linear's dtype, as in the MiniLM sample.
  struct TokenModel : nn::Module {
    std::shared_ptr<nn::Embedding> embedding =
        register_module("0", std::make_shared<nn::Embedding>(50, 8));
    std::shared_ptr<nn::Linear> linear = register_module("1", std::make_shared<nn::Linear>(8, 8));
    std::shared_ptr<nn::LayerNorm> norm = register_module("2", std::make_shared<nn::LayerNorm>(8));
    Tensor operator()(const Tensor& tokens) const {
      return norm->forward(linear->forward(embedding->forward(tokens).to(linear->weight.dtype())));
    }
  };
  auto make = [] {
    manual_seed(0);
    return std::make_shared<TokenModel>();
  };
  auto on_cpu = make();
  auto on_gpu = make();
  const Tensor held = on_gpu->parameters()[1];  // the Linear's weight, held across the cast
  utils::to_low_precision(*on_cpu, {.dtype = DType::BFloat16});
  utils::to_low_precision(*on_gpu, {.dtype = DType::BFloat16, .device = gpu()});
  REQUIRE(held.device() == gpu());
  REQUIRE(held.dtype() == DType::BFloat16);
  const auto params = on_gpu->named_parameters();
  for (const auto& [name, p] : params) {
    INFO(name);
    REQUIRE(p.device() == gpu());
    REQUIRE(p.dtype() == (name.rfind("0.", 0) == 0 ? DType::Float32 : DType::BFloat16));
  }
  const Tensor tokens = Tensor::from_vector(std::vector<int64_t>{1, 4, 9, 49, 0, 4}, {2, 3});
  // A small lr: a near-zero gradient whose sign differs between the devices' matmuls moves a
  // parameter by 2 lr at most.
  optim::StableAdamW opt_cpu(utils::param_groups_weight_decay(*on_cpu, 1e-2), {.lr = 1e-3});
  optim::StableAdamW opt_gpu(utils::param_groups_weight_decay(*on_gpu, 1e-2), {.lr = 1e-3});
  (*on_cpu)(tokens).to(DType::Float32).pow(2.0).mean().backward();
  (*on_gpu)(tokens.to(gpu())).to(DType::Float32).pow(2.0).mean().backward();
  opt_cpu.step();
  opt_gpu.step();
  const auto cpu_params = on_cpu->named_parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    require_close(params[i].second, cpu_params[i].second, 2e-2, 2e-2, params[i].first);
  }
}

TEST_CASE("cuda: memory_stats counts device tensors", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  const MemoryStats before = memory_stats(gpu());
  reset_peak_memory_stats(gpu());
  {
    const Tensor t = Tensor::empty({1000}, DType::Float32, gpu());
    REQUIRE(memory_stats(gpu()).live_bytes == before.live_bytes + 4000);
    REQUIRE(memory_stats(gpu()).peak_bytes >= before.live_bytes + 4000);
  }
  REQUIRE(memory_stats(gpu()).live_bytes == before.live_bytes);
  REQUIRE(memory_stats(gpu()).peak_bytes >= before.live_bytes + 4000);
  // The host's counters are the host's.
  const int64_t host_live = memory_stats().live_bytes;
  { const Tensor t = Tensor::empty({1000}, DType::Float32, gpu()); }
  REQUIRE(memory_stats().live_bytes == host_live);
}

TEST_CASE("cuda: the caching allocator reuses blocks and reaches a steady state", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  { const Tensor t = Tensor::empty({12345}, DType::Float32, gpu()); }
  const cuda::CachingAllocatorStats first = cuda::caching_allocator_stats(gpu());
  REQUIRE(first.cached_bytes >= 12345 * 4);
  { const Tensor t = Tensor::empty({12345}, DType::Float32, gpu()); }
  REQUIRE(cuda::caching_allocator_stats(gpu()).device_allocations == first.device_allocations);

  // A training loop: after its first steps, no more device allocations and no growth.
  manual_seed(0);
  nn::Sequential model;
  model.push_back(std::make_shared<nn::Linear>(32, 64));
  model.push_back(std::make_shared<nn::GELU>());
  model.push_back(std::make_shared<nn::LayerNorm>(64));
  model.push_back(std::make_shared<nn::Linear>(64, 16));
  model.to(gpu());
  optim::AdamW opt(model.parameters(), {.lr = 1e-3});
  const Tensor x = Tensor::randn({16, 32}, DType::Float32, gpu());
  const Tensor y = Tensor::arange(16, DType::Int64, gpu());
  auto step = [&] {
    nn::functional::cross_entropy(model(x), y).backward();
    opt.step();
    opt.zero_grad();
  };
  for (int i = 0; i < 3; ++i) step();
  cuda::synchronize();
  const cuda::CachingAllocatorStats warm = cuda::caching_allocator_stats(gpu());
  const int64_t live = memory_stats(gpu()).live_bytes;
  for (int i = 0; i < 5; ++i) step();
  cuda::synchronize();
  const cuda::CachingAllocatorStats steady = cuda::caching_allocator_stats(gpu());
  REQUIRE(steady.device_allocations == warm.device_allocations);
  REQUIRE(steady.reserved_bytes == warm.reserved_bytes);
  REQUIRE(memory_stats(gpu()).live_bytes == live);

  cuda::empty_cache(gpu());
  const cuda::CachingAllocatorStats emptied = cuda::caching_allocator_stats(gpu());
  REQUIRE(emptied.cached_bytes == 0);
  REQUIRE(emptied.device_frees > steady.device_frees);
  REQUIRE(emptied.reserved_bytes == steady.reserved_bytes - steady.cached_bytes);
}

TEST_CASE("cuda: errors name the CUDA call, and the device stays usable", "[cuda]") {
  OPTIMI_REQUIRE_CUDA();
  // Far more than any GPU has: cudaMalloc fails even after the cache is released.
  REQUIRE_THROWS_AS(Tensor::empty({int64_t(1) << 50}, DType::Float32, gpu()), std::runtime_error);
  REQUIRE_THROWS_WITH(Tensor::empty({int64_t(1) << 50}, DType::Float32, gpu()),
                      Catch::Contains("cudaMalloc"));
  REQUIRE(memory_stats(gpu()).live_bytes >= 0);
  REQUIRE((Tensor::ones({4}, DType::Float32, gpu()) * 2.0).sum().item() == 8.0);
  REQUIRE_THROWS_AS(Tensor::ones({2}, DType::Float32, Device::cuda(cuda::device_count())),
                    std::invalid_argument);
}
