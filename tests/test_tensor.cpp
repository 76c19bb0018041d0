#include <catch2/catch.hpp>
#include <cmath>
#include <limits>

#include <optimi/optimi.hpp>

using namespace optimi;

TEST_CASE("factories fill shape, dtype and values", "[tensor]") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.dtype() == DType::Float32);
  CHECK(z.device() == Device::cpu());
  CHECK(z.numel() == 6);
  CHECK(z.to_vector<float>() == std::vector<float>(6, 0.0f));
  CHECK(Tensor::ones({4}, DType::BFloat16).to_vector<double>() == std::vector<double>(4, 1.0));
  CHECK(Tensor::full({2}, 2.5, DType::Float64).to_vector<double>() ==
        std::vector<double>{2.5, 2.5});
  CHECK(Tensor::arange(4).to_vector<int64_t>() == std::vector<int64_t>{0, 1, 2, 3});
  CHECK(Tensor::from_vector(std::vector<int64_t>{1, 2}, {2}).dtype() == DType::Int64);
  CHECK(Tensor::full({}, 3.0).item() == 3.0);
  CHECK(Tensor::zeros({}).dim() == 0);
}

TEST_CASE("randn is seeded by manual_seed", "[tensor]") {
  manual_seed(7);
  auto a = Tensor::randn({100}).to_vector<float>();
  manual_seed(7);
  auto b = Tensor::randn({100}).to_vector<float>();
  CHECK(a == b);
  double mean = 0;
  for (float v : a) mean += v / 100.0;
  CHECK(std::abs(mean) < 0.3);
}

TEST_CASE("16-bit floats round to nearest even", "[tensor][dtype]") {
  // 1 + 2^-8 lies exactly between two bfloat16 values: ties go to the even one (1.0).
  float tie = 1.0f + std::ldexp(1.0f, -8);
  CHECK(Tensor::from_vector({tie}, {1}, DType::BFloat16).item() == 1.0);
  float above = 1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -12);
  CHECK(Tensor::from_vector({above}, {1}, DType::BFloat16).item() == 1.0 + std::ldexp(1.0, -7));
  CHECK(Tensor::from_vector({1.0f / 3.0f}, {1}, DType::Float16).item() == Approx(0.333251953125));
  CHECK(Tensor::from_vector({65504.0f}, {1}, DType::Float16).item() == 65504.0);
  CHECK(std::isinf(Tensor::from_vector({70000.0f}, {1}, DType::Float16).item()));
  CHECK(Tensor::from_vector({1e-7f}, {1}, DType::Float16).item() == Approx(1.1920928955078125e-07));
  CHECK(std::isnan(Tensor::from_vector({NAN}, {1}, DType::BFloat16).item()));
}

TEST_CASE("dtype promotion follows PyTorch", "[tensor][dtype]") {
  CHECK(promote_types(DType::BFloat16, DType::Float32) == DType::Float32);
  CHECK(promote_types(DType::BFloat16, DType::Float16) == DType::Float32);
  CHECK(promote_types(DType::Int64, DType::BFloat16) == DType::BFloat16);
  CHECK(promote_types(DType::Float64, DType::Float32) == DType::Float64);
  Tensor a = Tensor::ones({2}, DType::BFloat16);
  CHECK((a * Tensor::ones({2})).dtype() == DType::Float32);
  CHECK((a * 0.1).dtype() == DType::BFloat16);  // scalars do not promote
  CHECK((Tensor::arange(3) * 2.0).dtype() == DType::Int64);
  CHECK((Tensor::arange(3) / 2.0).dtype() == DType::Float32);
  CHECK(dtype_name(DType::BFloat16) == "bfloat16");
  CHECK(is_floating_point(DType::Float16));
  CHECK_FALSE(is_floating_point(DType::Int64));
}

TEST_CASE("conversions and copies", "[tensor]") {
  Tensor a = Tensor::from_vector({1.5f, -2.25f}, {2});
  Tensor b = a.to(DType::Float64);
  CHECK(b.dtype() == DType::Float64);
  CHECK(a.to(DType::Float32).is_same(a));
  Tensor c = Tensor::zeros({3, 2});
  c.copy_(a);  // broadcasts
  CHECK(c.to_vector<float>() == std::vector<float>{1.5f, -2.25f, 1.5f, -2.25f, 1.5f, -2.25f});
  CHECK_THROWS_AS(c.copy_(Tensor::zeros({3})), std::invalid_argument);
  Tensor d = a.clone();
  d.fill_(4);
  CHECK(a.to_vector<float>()[0] == 1.5f);
  CHECK(Tensor::from_vector({2.7f}, {1}).to(DType::Int64).item() == 2.0);
}

TEST_CASE("set_data keeps identity", "[tensor]") {
  Tensor p = Tensor::ones({2}).requires_grad_();
  Tensor alias = p;
  p.set_data(p.to(DType::BFloat16));
  CHECK(alias.dtype() == DType::BFloat16);
  CHECK(alias.requires_grad());
  CHECK(alias.is_same(p));
}

TEST_CASE("bad input throws invalid_argument naming the values", "[tensor][errors]") {
  CHECK_THROWS_WITH(Tensor::from_vector({1.0f, 2.0f}, {3}),
                    Catch::Contains("2 values") && Catch::Contains("[3]"));
  CHECK_THROWS_AS(Tensor::zeros({-1}), std::invalid_argument);
  CHECK_THROWS_WITH(Tensor::zeros({2}).item(), Catch::Contains("[2]"));
  CHECK_THROWS_AS(Tensor().shape(), std::invalid_argument);
  CHECK_THROWS_AS(Tensor().to_vector<float>(), std::invalid_argument);
  CHECK_THROWS_WITH(Tensor::zeros({2}).to_vector<int>(), Catch::Contains("to_vector"));
  CHECK_THROWS_AS(Tensor::arange(3).requires_grad_(), std::invalid_argument);
  CHECK_THROWS_WITH(Tensor::ones({2, 3}) + Tensor::ones({4}),
                    Catch::Contains("[2, 3]") && Catch::Contains("[4]"));
  CHECK_THROWS_WITH(Tensor::ones({2}).sum(3), Catch::Contains("dim 3"));
  CHECK_THROWS_AS(Tensor::ones({2}, DType::Float32, Device::cuda()), std::invalid_argument);
  CHECK_THROWS_AS(Tensor::ones({2}).set_grad(Tensor::ones({3})), std::invalid_argument);
  CHECK_FALSE(cuda_is_available());
}

TEST_CASE("memory_stats counts live and peak storage bytes", "[tensor][memory]") {
  reset_peak_memory_stats();
  MemoryStats before = memory_stats();
  {
    Tensor t = Tensor::empty({1000}, DType::Float32);
    CHECK(memory_stats().live_bytes == before.live_bytes + 4000);
  }
  CHECK(memory_stats().live_bytes == before.live_bytes);
  CHECK(memory_stats().peak_bytes >= before.live_bytes + 4000);
  reset_peak_memory_stats();
  CHECK(memory_stats().peak_bytes == memory_stats().live_bytes);
}

TEST_CASE("large CPU blocks are reused, not mapped afresh", "[tensor][memory]") {
  // Under AddressSanitizer nothing is cached, so that it sees every use after free.
#if defined(__SANITIZE_ADDRESS__)
  constexpr bool kCaches = false;
#elif defined(__has_feature)
  constexpr bool kCaches = !__has_feature(address_sanitizer);
#else
  constexpr bool kCaches = true;
#endif
  const MemoryStats before = memory_stats();
  const void* first = nullptr;
  {
    Tensor t = Tensor::ones({1 << 18});  // 1 MiB, a cached size
    first = t.data_ptr();
  }
  // Freed storage leaves the live bytes at once, though its block stays cached.
  CHECK(memory_stats().live_bytes == before.live_bytes);
  {
    Tensor again = Tensor::zeros({1 << 18});
    if (kCaches) CHECK(again.data_ptr() == first);
    // A reused block holds what its new tensor says, not the old values.
    CHECK(again.sum().item() == 0.0);
  }
  // With the 1 MiB block cached again, a request of another bin does not get it.
  Tensor other = Tensor::ones({1 << 17});
  if (kCaches) CHECK(other.data_ptr() != first);
  CHECK(other.sum().item() == double(1 << 17));
}

TEST_CASE("warning handler can be replaced", "[tensor][warning]") {
  std::vector<std::string> seen;
  WarningHandler previous = set_warning_handler([&](const std::string& m) { seen.push_back(m); });
  warn("hello");
  set_warning_handler(previous);
  CHECK(seen == std::vector<std::string>{"hello"});
}
