// Learning-rate schedulers driving optimizers through lr()/set_lr().
#include <catch2/catch.hpp>
#include <cmath>
#include <numbers>
#include <vector>

#include "optimi/autograd.hpp"
#include "optimi/optim.hpp"

using namespace optimi;
using namespace optimi::optim;

namespace {

std::vector<double> trajectory(LRScheduler& sched, Optimizer& opt, size_t group, int steps) {
  std::vector<double> lrs{opt.lr(group)};
  for (int t = 0; t < steps; ++t) {
    sched.step();
    lrs.push_back(opt.lr(group));
  }
  return lrs;
}

void check_lrs(const std::vector<double>& got, const std::vector<double>& expected) {
  REQUIRE(got.size() == expected.size());
  for (size_t t = 0; t < got.size(); ++t) {
    INFO("step " << t);
    CHECK(got[t] == Approx(expected[t]).margin(1e-12));
  }
}

}  // namespace

TEST_CASE("LinearWarmup ramps each group from start_factor to its base lr", "[optim]") {
  Tensor a = Tensor::ones({2}).requires_grad_(), b = Tensor::ones({2}).requires_grad_();
  AdamW opt(std::vector<ParamGroup>{{{a}}, {{b}, 0.5}}, {.lr = 1.0});
  LinearWarmup sched(opt, 4);
  CHECK(sched.base_lrs() == std::vector<double>{1.0, 0.5});
  CHECK(opt.lr(1) == 0.0);
  check_lrs(trajectory(sched, opt, 0, 5), {0.0, 0.25, 0.5, 0.75, 1.0, 1.0});
  CHECK(opt.lr(1) == 0.5);
  LinearWarmup from_half(opt, 2, 0.5);
  CHECK(opt.lr(0) == 0.5);
}

TEST_CASE("CosineAnnealing follows PyTorch's closed form", "[optim]") {
  Tensor a = Tensor::ones({2}).requires_grad_();
  SGD opt({a}, {.lr = 1.0});
  CosineAnnealing sched(opt, 4, 0.2);
  std::vector<double> expected;
  for (int t = 0; t <= 6; ++t) {
    double progress = std::min(t, 4) / 4.0;
    expected.push_back(0.2 + 0.8 * (1 + std::cos(std::numbers::pi * progress)) / 2);
  }
  check_lrs(trajectory(sched, opt, 0, 6), expected);
}

TEST_CASE("WarmupCosine warms up, then anneals; its state is the last step", "[optim]") {
  Tensor a = Tensor::ones({2}).requires_grad_();
  Lion opt({a}, {.lr = 2.0});
  WarmupCosine sched(opt, 2, 6);
  check_lrs(trajectory(sched, opt, 0, 7), {0.0, 1.0, 2.0, 2.0 * (1 + std::cos(M_PI / 4)) / 2, 1.0,
                                           2.0 * (1 + std::cos(3 * M_PI / 4)) / 2, 0.0, 0.0});
  CHECK(sched.last_step() == 7);

  Lion resumed_opt({a}, {.lr = 2.0});
  WarmupCosine resumed(resumed_opt, 2, 6);
  resumed.set_last_step(3);
  CHECK(resumed_opt.lr(0) == Approx(2.0 * (1 + std::cos(M_PI / 4)) / 2));
  resumed.step();
  CHECK(resumed_opt.lr(0) == Approx(1.0));

  CHECK_THROWS_AS(WarmupCosine(opt, 4, 4), std::invalid_argument);
  CHECK_THROWS_AS(CosineAnnealing(opt, 0), std::invalid_argument);
  CHECK_THROWS_AS(LinearWarmup(opt, -1), std::invalid_argument);
  CHECK_THROWS_AS(resumed.set_last_step(-1), std::invalid_argument);
}

TEST_CASE("schedulers drive gradient-release steps", "[optim]") {
  Tensor w = Tensor::zeros({3}).requires_grad_();
  SGD opt({w}, {.lr = 1.0, .gradient_release = true});
  w.register_post_accumulate_grad_hook([&opt](Tensor& p) {
    opt.step(p);
    opt.zero_grad(p);
  });
  LinearWarmup sched(opt, 2);
  std::vector<float> moved;
  for (int t = 0; t < 3; ++t) {
    float before = w.to_vector<float>()[0];
    (w * Tensor::ones({3})).sum().backward();  // gradient of ones
    moved.push_back(before - w.to_vector<float>()[0]);
    sched.step();
  }
  CHECK(moved == std::vector<float>{0.0f, 0.5f, 1.0f});
}
