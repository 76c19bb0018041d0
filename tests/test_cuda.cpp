// CUDA checks that hold with or without a device (and in a CPU-only build): they run in the
// ordinary suite. The comparisons against the CPU on a device are the [cuda] tests.
#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>

#include <optimi/optimi.hpp>

using namespace optimi;

TEST_CASE("cuda_is_available agrees with the device count", "[device]") {
  REQUIRE(cuda_is_available() == (cuda::device_count() > 0));
  REQUIRE(Device::cuda(1).str() == "cuda:1");
  REQUIRE(Device::cuda().is_cuda());
  // Nothing runs asynchronously on the CPU.
  REQUIRE_NOTHROW(cuda::synchronize(Device::cpu()));
  REQUIRE(memory_stats(Device::cuda()).live_bytes >= 0);
}

TEST_CASE("a CUDA device index out of range is a clear std::invalid_argument", "[device]") {
  if (!cuda_is_available()) return;  // without a device the next test covers the error
  const Device missing = Device::cuda(cuda::device_count());
  REQUIRE_THROWS_AS(Tensor::zeros({2}, DType::Float32, missing), std::invalid_argument);
  REQUIRE_THROWS_WITH(Tensor::zeros({2}, DType::Float32, missing), Catch::Contains(missing.str()));
  REQUIRE_THROWS_AS(Tensor::ones({2}).to(Device::cuda(-1)), std::invalid_argument);
}

TEST_CASE("without a CUDA device, CUDA tensors throw a clear error", "[device]") {
  if (cuda_is_available()) return;  // covered by the [cuda] suite
  const auto names_the_device = Catch::Contains("cuda:0");
  REQUIRE_THROWS_WITH(Tensor::zeros({2, 3}, DType::Float32, Device::cuda()), names_the_device);
  REQUIRE_THROWS_WITH(Tensor::ones({4}).to(Device::cuda()), names_the_device);
  REQUIRE_THROWS_WITH(Tensor::from_vector({1.0f, 2.0f}, {2}, DType::BFloat16, Device::cuda()),
                      names_the_device);
  nn::Linear layer(3, 2);
  REQUIRE_THROWS_WITH(layer.to(Device::cuda()), names_the_device);
  // A failed move leaves the module where it was.
  REQUIRE(layer.weight.device() == Device::cpu());
  REQUIRE_THROWS_WITH(
      utils::to_low_precision(layer, {.dtype = DType::BFloat16, .device = Device::cuda()}),
      names_the_device);
  REQUIRE_THROWS_AS(cuda::synchronize(Device::cuda()), std::exception);
  // Nothing was allocated, and the bookkeeping still answers.
  REQUIRE(memory_stats(Device::cuda()).live_bytes == 0);
  REQUIRE(cuda::device_count() == 0);
}
