#include <catch2/catch.hpp>

#include <optimi/optimi.hpp>

using namespace optimi;

TEST_CASE("backward accumulates into leaf gradients", "[autograd]") {
  Tensor x = Tensor::from_vector({1.0f, 2.0f}, {2}).requires_grad_();
  (x * x).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{2.0f, 4.0f});
  (x * 3.0).sum().backward();
  CHECK(x.grad().to_vector<float>() == std::vector<float>{5.0f, 7.0f});
}

TEST_CASE("NoGradGuard records nothing", "[autograd]") {
  Tensor x = Tensor::ones({2}).requires_grad_();
  {
    NoGradGuard guard;
    Tensor y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK_FALSE(grad_mode_enabled());
  }
  CHECK(grad_mode_enabled());
  CHECK((x * 2.0).requires_grad());
}

TEST_CASE("backward needs a one-element tensor that requires grad", "[autograd][errors]") {
  Tensor x = Tensor::ones({2}).requires_grad_();
  CHECK_THROWS_WITH((x * 2.0).backward(), Catch::Contains("[2]"));
  CHECK_THROWS_AS(Tensor::ones({1}).backward(), std::invalid_argument);
}

TEST_CASE("post-accumulate-grad hooks run once, after the gradient is complete",
          "[autograd][hooks]") {
  Tensor w = Tensor::from_vector({1.0f, 2.0f}, {2}).requires_grad_();
  std::vector<std::vector<float>> seen;
  w.register_post_accumulate_grad_hook(
      [&](Tensor& t) { seen.push_back(t.grad().to_vector<float>()); });
  // w is used twice: the hook must see the sum of both contributions, once.
  Tensor loss = (w * 3.0).sum() + (w * w).sum();
  loss.backward();
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == std::vector<float>{5.0f, 7.0f});
}

TEST_CASE("hooks run in registration order and are removable", "[autograd][hooks]") {
  Tensor w = Tensor::ones({2}).requires_grad_();
  std::vector<int> order;
  RemovableHandle h1 = w.register_post_accumulate_grad_hook([&](Tensor&) { order.push_back(1); });
  RemovableHandle h2 = w.register_post_accumulate_grad_hook([&](Tensor&) { order.push_back(2); });
  (w * 2.0).sum().backward();
  CHECK(order == std::vector<int>{1, 2});
  h1.remove();
  h1.remove();  // idempotent
  order.clear();
  (w * 2.0).sum().backward();
  CHECK(order == std::vector<int>{2});
  CHECK(w.has_post_accumulate_grad_hooks());
  h2.remove();
  CHECK_FALSE(w.has_post_accumulate_grad_hooks());
  RemovableHandle dangling;
  {
    Tensor tmp = Tensor::ones({1}).requires_grad_();
    dangling = tmp.register_post_accumulate_grad_hook([](Tensor&) {});
  }
  dangling.remove();  // the tensor is gone: harmless
}

TEST_CASE("a hook can free the gradient", "[autograd][hooks]") {
  Tensor w = Tensor::ones({1000}).requires_grad_();
  w.register_post_accumulate_grad_hook([](Tensor& t) { t.set_grad(Tensor()); });
  (w * 2.0).sum().backward();
  CHECK_FALSE(w.grad().defined());
}

TEST_CASE("hooks fire before backward has finished", "[autograd][hooks]") {
  // A chain: loss depends on w2 (late layer) and w1 (early layer). w2's hook must run before
  // w1's gradient exists, i.e. while backward is still going.
  Tensor w1 = Tensor::full({4}, 0.5).requires_grad_();
  Tensor w2 = Tensor::full({4}, 2.0).requires_grad_();
  bool w1_had_grad_when_w2_hook_ran = true;
  w2.register_post_accumulate_grad_hook(
      [&](Tensor&) { w1_had_grad_when_w2_hook_ran = w1.grad().defined(); });
  bool w2_hook_ran_before_w1 = false;
  bool w2_ran = false;
  w2.register_post_accumulate_grad_hook([&](Tensor&) { w2_ran = true; });
  w1.register_post_accumulate_grad_hook([&](Tensor&) { w2_hook_ran_before_w1 = w2_ran; });
  Tensor h = (w1 * 3.0).exp();
  Tensor loss = (h * w2).sum();
  loss.backward();
  CHECK_FALSE(w1_had_grad_when_w2_hook_ran);
  CHECK(w2_hook_ran_before_w1);
  CHECK(w1.grad().defined());
}

TEST_CASE("hooks need a leaf that requires grad", "[autograd][hooks][errors]") {
  CHECK_THROWS_AS(Tensor::ones({1}).register_post_accumulate_grad_hook([](Tensor&) {}),
                  std::invalid_argument);
  Tensor w = Tensor::ones({1}).requires_grad_();
  Tensor y = w * 2.0;
  CHECK_THROWS_AS(y.register_post_accumulate_grad_hook([](Tensor&) {}), std::invalid_argument);
}

TEST_CASE("saved activations and intermediate gradients are released during backward",
          "[autograd][memory]") {
  // Each exp saves its 4 MB output; the multiplications by scalars save nothing.
  Tensor w = Tensor::ones({1 << 20}).requires_grad_();
  int64_t live_before = memory_stats().live_bytes;
  int64_t peak_during_hook = 0;
  w.register_post_accumulate_grad_hook(
      [&](Tensor&) { peak_during_hook = memory_stats().live_bytes; });
  {
    Tensor loss = ((w * 0.5).exp() * 0.25).exp().sum();
    int64_t with_graph = memory_stats().live_bytes;
    CHECK(with_graph - live_before >= 2 * (4 << 20));  // the two saved exp outputs
    loss.backward();
  }
  // By the time w's hook ran, the activations the graph saved had been dropped: only w's
  // gradient (4 MB) and at most one gradient in flight remain above the baseline.
  CHECK(peak_during_hook - live_before <= 2 * (4 << 20) + 4096);
  CHECK(memory_stats().live_bytes - live_before == (4 << 20));  // w.grad
}

TEST_CASE("detach cuts the graph and shares storage", "[autograd]") {
  Tensor x = Tensor::ones({2}).requires_grad_();
  Tensor d = (x * 2.0).detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.is_leaf());
  Tensor v = x.detach();
  CHECK(v.data_ptr() == x.data_ptr());
}

TEST_CASE("anomaly mode names the first op that produced NaN or Inf", "[autograd][anomaly]") {
  Tensor x = Tensor::from_vector({-1.0f, 4.0f}, {2}).requires_grad_();
  CHECK_NOTHROW(x.sqrt());  // off by default: NaN flows silently
  {
    DetectAnomalyGuard guard;
    CHECK_THROWS_WITH(x.sqrt(), Catch::Contains("forward of sqrt") && Catch::Contains("NaN"));
    // Forward is finite but backward is not: d/dx sqrt(x) at 0 is infinite.
    Tensor z = Tensor::from_vector({0.0f, 1.0f}, {2}).requires_grad_();
    Tensor y = z.sqrt().sum();
    CHECK_THROWS_WITH(y.backward(), Catch::Contains("backward of sqrt") && Catch::Contains("Inf"));
  }
  CHECK_FALSE(detect_anomaly_enabled());
}

TEST_CASE("gradients of parts of a tensor add into one buffer", "[autograd]") {
  // The parts of a split (q, k and v of a fused projection) each add into x's pending gradient.
  Tensor x = Tensor::ones({4, 6}).requires_grad_();
  Tensor h = x * 1.0;
  std::vector<Tensor> parts = split(h, 2, 1);
  (parts[0] * 1.0 + parts[1] * 2.0 + parts[2] * 3.0).sum().backward();
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3,
                                                            1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});

  // Overlapping parts, selects and strided slices add up too.
  Tensor y = Tensor::ones({3, 4}).requires_grad_();
  Tensor g = y * 1.0;
  (g.slice(0, 0, 2) * 2.0).sum().backward();
  REQUIRE(y.grad().to_vector<float>() == std::vector<float>{2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0});
  Tensor z = Tensor::ones({3, 4}).requires_grad_();
  Tensor zh = z * 1.0;
  (zh.slice(0, 0, 2).sum() + zh.slice(0, 1, 3).sum() * 10.0 + zh.select(1, 3).sum() * 100.0 +
   zh.slice(1, 0, 4, 2).sum() * 1000.0)
      .backward();
  REQUIRE(z.grad().to_vector<float>() == std::vector<float>{1001, 1, 1001, 101,     //
                                                            1011, 11, 1011, 111,    //
                                                            1010, 10, 1010, 110});  //
}

TEST_CASE("a part's gradient never writes into a gradient another input holds", "[autograd]") {
  // Add hands one gradient tensor to both its inputs: h's pending gradient is then shared with
  // t's, and the slice of h must add into a copy.
  Tensor x = Tensor::ones({3, 2}).requires_grad_();
  Tensor t = Tensor::ones({3, 2}).requires_grad_();
  Tensor h = x * 1.0;
  ((h + t).sum() + (h.slice(0, 0, 2) * 3.0).sum()).backward();
  REQUIRE(t.grad().to_vector<float>() == std::vector<float>(6, 1.0f));
  REQUIRE(x.grad().to_vector<float>() == std::vector<float>{4, 4, 4, 4, 1, 1});
}
