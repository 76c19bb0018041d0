// optimi's semantics beyond the golden trajectories: validation messages, the decouple_lr
// warning, Kahan summation, gradient release and optimizer accumulation, and the values of
// spec optimizers.md section 10.
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "optim_factory.hpp"
#include "optimi/autograd.hpp"
#include "optimi/nn/safetensors.hpp"
#include "optimi/optim.hpp"
#include "optimi/random.hpp"
#include "optimi/warning.hpp"

using namespace optimi;
using namespace optimi::optim;
using nlohmann::json;

namespace {

std::string invalid_argument_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  FAIL("no std::invalid_argument thrown");
  return {};
}

// Collects the warnings emitted while alive.
struct CapturedWarnings {
  std::vector<std::string> messages;
  WarningHandler previous;
  CapturedWarnings()
      : previous(set_warning_handler([this](const std::string& m) { messages.push_back(m); })) {}
  ~CapturedWarnings() { set_warning_handler(previous); }
};

Tensor param(std::vector<float> values, DType dtype = DType::Float32) {
  Shape shape{int64_t(values.size())};
  return Tensor::from_vector(values, shape, dtype).requires_grad_();
}

std::string high_wd_warning(const std::string& value) {
  return "You are using weight_decay up to " + value +
         " which is potentially high for decouple_lr=True. Unlike decoupled weight decay, fully "
         "decoupled weight decay does not reduce weight decay by the learning rate.";
}

// Spec section 10: p0 = [1, -0.5, 0.25, 2], g_t = [0.1 t, -0.2, 0.3 (-1)^t, 0.05 t²].
Tensor section10_grad(int t) {
  float sign = t % 2 == 0 ? 1.0f : -1.0f;
  return Tensor::from_vector({0.1f * float(t), -0.2f, 0.3f * sign, 0.05f * float(t * t)}, {4});
}

void check_values(const Tensor& p, const std::vector<float>& expected) {
  std::vector<float> got = p.to_vector<float>();
  REQUIRE(got.size() == expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("element " << i << ": " << got[i] << " vs " << expected[i]);
    CHECK(std::abs(got[i] - expected[i]) <= 1e-6 + 1e-5 * std::abs(expected[i]));
  }
}

}  // namespace

TEST_CASE("optimizers reject bad hyperparameters with optimi's messages", "[optim]") {
  Tensor p = param({1.0f, 2.0f});
  CHECK(invalid_argument_message([&] { AdamW opt({p}, {}); }) ==
        "Invalid learning rate: lr=nan (lr is required)");
  CHECK(invalid_argument_message([&] { SGD opt({p}, {.lr = -1.0}); }) ==
        "Invalid learning rate: lr=-1.0");
  CHECK(invalid_argument_message([&] { Adam opt({p}, {.lr = 1e-3, .weight_decay = -0.1}); }) ==
        "Invalid weight decay: weight_decay=-0.1");
  // max_lr is checked even without decouple_lr.
  CHECK(invalid_argument_message([&] { Lion opt({p}, {.lr = 1e-3, .max_lr = -1.0}); }) ==
        "Invalid maximum learning rate: max_lr=-1.0");
  CHECK(invalid_argument_message([&] { SGD opt({p}, {.lr = 0.1, .momentum = 1.0}); }) ==
        "Invalid momentum: momentum=1.0");
  CHECK(invalid_argument_message([&] {
          RAdam opt({p}, {.lr = 1e-3, .betas = {0.9, -0.5}});
        }) == "Invalid beta2 parameter: betas[1]=-0.5");
  CHECK(invalid_argument_message([&] {
          Adan opt({p}, {.lr = 1e-3, .betas = {0.9, 0.9, 1.0}});
        }) == "Invalid beta3 parameter: betas[2]=1.0");
  CHECK(invalid_argument_message([&] { StableAdamW opt({p}, {.lr = 1e-3, .eps = -1e-8}); }) ==
        "Invalid epsilon: eps=-1e-08");
  // The optimizer's own checks come first.
  CHECK(invalid_argument_message([&] {
          Adam opt({p}, {.lr = -1.0, .betas = {1.0, 0.9}});
        }) == "Invalid beta1 parameter: betas[0]=1.0");
  CHECK(invalid_argument_message([&] { Ranger opt({p}, {.lr = 1e-3, .k = 0}); }) ==
        "Invalid lookahead steps: k=0");
  CHECK(invalid_argument_message([&] { Adam opt(std::vector<Tensor>{}, {.lr = 1e-3}); }) ==
        "optimizer got an empty parameter list");
  CHECK_THROWS_AS(Adam(std::vector<ParamGroup>{{{p}}, {{p}}}, {.lr = 1e-3}), std::invalid_argument);
  // optimi accepts any group override (a group lr of -5 included); here they get the checks of the
  // defaults, and so do infinite values and Ranger's alpha.
  CHECK(invalid_argument_message([&] {
          SGD opt(std::vector<ParamGroup>{{{p}, -5.0}}, {.lr = 0.1});
        }) == "Invalid learning rate: lr=-5.0 in param group 0");
  CHECK(invalid_argument_message([&] {
          AdamW opt({p}, {.lr = std::numeric_limits<double>::infinity()});
        }) == "Invalid learning rate: lr=inf");
  CHECK(invalid_argument_message([&] { Ranger opt({p}, {.lr = 1e-3, .alpha = 2.0}); }) ==
        "Invalid lookahead alpha: alpha=2.0");
}

TEST_CASE("bad use of a built optimizer throws std::invalid_argument", "[optim]") {
  Tensor p = param({1.0f, 2.0f});
  AdamW opt({p}, {.lr = 1e-3});
  CHECK_THROWS_AS(opt.lr(1), std::invalid_argument);
  CHECK_THROWS_AS(opt.set_weight_decay(3, 0.0), std::invalid_argument);
  p.set_grad(Tensor::ones({2}));
  CHECK_THROWS_WITH(opt.step(p), Catch::Contains("gradient_release"));
  // State made for float32 does not fit the parameter once the model is cast.
  opt.step();
  p.set_data(p.detach().to(DType::BFloat16));
  p.set_grad(Tensor::ones({2}, DType::BFloat16));
  CHECK_THROWS_WITH(opt.step(), Catch::Contains("float32") && Catch::Contains("bfloat16"));

  AdamW released({p}, {.lr = 1e-3, .gradient_release = true});
  Tensor stranger = param({1.0f});
  stranger.set_grad(Tensor::ones({1}));
  CHECK_THROWS_WITH(released.step(stranger), Catch::Contains("not one of this optimizer"));
  p.set_grad(Tensor());
  CHECK_THROWS_WITH(released.step(p), Catch::Contains("no gradient"));
}

TEST_CASE("the decouple_lr warning: one for all groups, threshold inclusive", "[optim]") {
  Tensor a = param({1.0f}), b = param({2.0f}), c = param({3.0f});
  SECTION("default weight decay") {
    CapturedWarnings w;
    AdamW opt({a}, {.lr = 1e-3, .decouple_lr = true});
    REQUIRE(w.messages.size() == 1);
    CHECK(w.messages[0] == high_wd_warning("0.01"));
  }
  SECTION("several high groups give one warning with the largest value") {
    CapturedWarnings w;
    std::vector<ParamGroup> groups{
        {{a}, std::nullopt, 0.0}, {{b}, std::nullopt, 2e-3}, {{c}, std::nullopt, 5e-3}};
    StableAdamW opt(groups, {.lr = 1e-3, .weight_decay = 0.0, .decouple_lr = true});
    REQUIRE(w.messages.size() == 1);
    CHECK(w.messages[0] == high_wd_warning("0.005"));
  }
  SECTION("no warning when every group overrides weight decay to 0") {
    CapturedWarnings w;
    std::vector<ParamGroup> groups{{{a}, std::nullopt, 0.0}, {{b}, std::nullopt, 0.0}};
    AdamW opt(groups, {.lr = 1e-3, .weight_decay = 0.1, .decouple_lr = true});
    CHECK(w.messages.empty());
  }
  SECTION("1e-3 warns, below does not, nor without decouple_lr") {
    CapturedWarnings w;
    Lion warns({a}, {.lr = 1e-3, .weight_decay = 1e-3, .decouple_lr = true});
    Lion quiet({b}, {.lr = 1e-3, .weight_decay = 9e-4, .decouple_lr = true});
    AdamW coupled({c}, {.lr = 1e-3, .weight_decay = 0.5});
    REQUIRE(w.messages.size() == 1);
    CHECK(w.messages[0] == high_wd_warning("0.001"));
  }
}

TEST_CASE("state has the parameter's dtype; Kahan buffers only where they apply", "[optim]") {
  auto state_of = [](Optimizer& opt) {
    auto path = std::filesystem::temp_directory_path() / "optimi_state_dtype.safetensors";
    opt.save(path);
    auto file = nn::load_safetensors(path);
    std::filesystem::remove(path);
    return file.tensors;
  };
  for (DType dtype : {DType::Float32, DType::BFloat16, DType::Float16}) {
    for (const std::string& name : testing::optimizer_names()) {
      DYNAMIC_SECTION(name << " " << dtype_name(dtype)) {
        Tensor p = param({0.5f, -0.25f, 1.0f}, dtype);
        json options = {{"lr", 1e-3}};
        if (name == "SGD") options["momentum"] = 0.9;
        auto opt = testing::make_optimizer(name, options, std::vector<Tensor>{p});
        p.set_grad(Tensor::from_vector({0.1f, 0.2f, -0.3f}, {3}, dtype));
        opt->step();
        auto tensors = state_of(*opt);
        CHECK(tensors.count("state.0.exp_avg") == 1);
        for (const auto& [key, t] : tensors) {
          INFO(key);
          CHECK(t.dtype() == dtype);
          CHECK(t.shape() == p.shape());
        }
        // Automatic Kahan summation for low precision, except Adan whose default is off.
        bool kahan = dtype != DType::Float32 && name != "Adan";
        CHECK(tensors.count("state.0.kahan_comp") == (kahan ? 1u : 0u));
      }
    }
  }
}

TEST_CASE("Kahan summation keeps updating bfloat16 weights where plain rounding stalls",
          "[optim]") {
  // Each step moves the weight by 1e-3, an eighth of a bfloat16 ulp at 1.0.
  auto run = [](std::optional<bool> kahan_sum) {
    Tensor p = param({1.0f, 1.0f}, DType::BFloat16);
    SGD opt({p}, {.lr = 1e-3, .kahan_sum = kahan_sum});
    for (int t = 0; t < 100; ++t) {
      p.set_grad(Tensor::ones({2}, DType::BFloat16));
      opt.step();
    }
    return p.to_vector<float>();
  };
  std::vector<float> plain = run(false);
  std::vector<float> kahan = run(std::nullopt);
  CHECK(plain[0] == 1.0f);
  CHECK(kahan[0] == Approx(0.9f).margin(4e-3));
  CHECK(run(true) == kahan);
}

TEST_CASE("spec section 10: eight steps of every optimizer", "[optim]") {
  struct Row {
    std::string name;
    json options;
    std::vector<float> expected;
  };
  const std::vector<Row> rows = {
      {"SGD", {{"lr", 0.1}}, {0.63999999f, -0.33999991f, 0.25f, 0.98000008f}},
      {"SGD",
       {{"lr", 0.1}, {"momentum", 0.9}, {"dampening", true}, {"torch_init", true}},
       {0.84742051f, -0.33999991f, 0.4118672f, 1.736926f}},
      {"SGD",
       {{"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 0.01}},
       {-0.038010344f, 0.085828036f, 0.32270271f, -0.42571166f}},
      {"SGD",
       {{"lr", 0.1},
        {"momentum", 0.9},
        {"weight_decay", 0.01},
        {"decouple_lr", true},
        {"max_lr", 0.2}},
       {-0.043241054f, 0.087293267f, 0.31917581f, -0.43686646f}},
      {"Adam",
       {{"lr", 0.01}, {"weight_decay", 0.1}},
       {0.92051333f, -0.42006403f, 0.25888181f, 1.9236931f}},
      {"Adam",
       {{"lr", 0.01}, {"weight_decay", 0.001}, {"decouple_lr", true}},
       {0.9145062f, -0.41629377f, 0.26270732f, 1.9126471f}},
      {"AdamW", {{"lr", 0.01}}, {0.92143393f, -0.41962838f, 0.26457936f, 1.926764f}},
      {"Adan", {{"lr", 0.01}}, {0.92409837f, -0.41927287f, 0.25431019f, 1.9291437f}},
      {"Adan",
       {{"lr", 0.01}, {"weight_decay", 0.02}, {"decouple_lr", true}, {"max_lr", 0.02}},
       {0.852373f, -0.38522512f, 0.23512322f, 1.7822514f}},
      {"Lion",
       {{"lr", 0.01}, {"weight_decay", 0.1}},
       {0.91230762f, -0.41629353f, 0.24796705f, 1.9043356f}},
      {"RAdam",
       {{"lr", 0.01}, {"weight_decay", 0.1}, {"decouple_wd", true}},
       {0.97861564f, -0.4829855f, 0.25233263f, 1.9668684f}},
      {"Ranger",
       {{"lr", 0.01}, {"k", 3}, {"alpha", 0.25}, {"weight_decay", 0.1}},
       {0.99147761f, -0.49329513f, 0.25027752f, 1.9871788f}},
      {"StableAdamW", {{"lr", 0.01}}, {0.93833929f, -0.43696553f, 0.26346162f, 1.942331f}},
      {"StableAdamW",
       {{"lr", 0.01}, {"weight_decay", 0.001}, {"decouple_lr", true}, {"max_lr", 0.02}},
       {0.93590075f, -0.43578148f, 0.26281023f, 1.9373828f}},
  };
  CapturedWarnings quiet;
  for (const Row& row : rows) {
    DYNAMIC_SECTION(row.name << " " << row.options.dump()) {
      Tensor p = param({1.0f, -0.5f, 0.25f, 2.0f});
      auto opt = testing::make_optimizer(row.name, row.options, std::vector<Tensor>{p});
      for (int t = 1; t <= 8; ++t) {
        p.set_grad(section10_grad(t));
        opt->step();
        opt->zero_grad();
      }
      check_values(p, row.expected);
    }
  }
}

TEST_CASE("spec section 10: gradient release with optimizer accumulation", "[optim]") {
  struct Row {
    std::string name;
    json options;
    std::vector<float> expected;
  };
  const std::vector<Row> rows = {
      {"SGD",
       {{"lr", 0.1}, {"momentum", 0.9}},
       {0.62208956f, -0.31731343f, 0.23557737f, 0.99014968f}},
      {"Adam", {{"lr", 0.01}}, {0.9805302f, -0.48000008f, 0.24894738f, 1.9822699f}},
      {"AdamW", {{"lr", 0.01}}, {0.98033112f, -0.47990108f, 0.24889743f, 1.9818707f}},
      {"Adan", {{"lr", 0.01}}, {0.98117024f, -0.47980613f, 0.24699789f, 1.9826876f}},
      {"Lion", {{"lr", 0.01}}, {0.98000002f, -0.48000002f, 0.22999999f, 1.98f}},
      {"RAdam", {{"lr", 0.01}}, {0.99615341f, -0.49677268f, 0.24977751f, 1.9948015f}},
      {"Ranger", {{"lr", 0.01}, {"k", 2}}, {0.99807668f, -0.49838635f, 0.24988875f, 1.9974008f}},
      {"StableAdamW", {{"lr", 0.01}}, {0.9856528f, -0.48532972f, 0.24919522f, 1.9867804f}},
  };
  for (const Row& row : rows) {
    DYNAMIC_SECTION(row.name) {
      Tensor p = param({1.0f, -0.5f, 0.25f, 2.0f});
      auto opt = testing::make_optimizer(row.name, row.options, std::vector<Tensor>{p}, true);
      for (int t = 1; t <= 8; ++t) {
        opt->set_optimizer_accumulation(t % 4 != 0);
        p.set_grad(section10_grad(t));
        opt->step(p);
        opt->zero_grad(p);
        CHECK_FALSE(p.grad().defined());
      }
      check_values(p, row.expected);
    }
  }
}

TEST_CASE("gradient release: whole-model calls are harmless, 0-d parameters work", "[optim]") {
  Tensor w = param({1.0f, 2.0f});
  Tensor s = Tensor::full({}, 3.0, DType::Float32).requires_grad_();
  AdamW opt({w, s}, {.lr = 0.1, .gradient_release = true});
  for (Tensor& p : std::vector<Tensor>{w, s}) {
    p.register_post_accumulate_grad_hook([&opt](Tensor& t) {
      opt.step(t);
      opt.zero_grad(t);
    });
  }
  Tensor loss = (w * w).sum() + s * s;
  loss.backward();
  std::vector<float> w1 = w.to_vector<float>();
  float s1 = float(s.item());
  CHECK(w1[0] < 1.0f);
  CHECK(s1 < 3.0f);
  opt.step();
  opt.zero_grad();
  CHECK(w.to_vector<float>() == w1);
  CHECK(float(s.item()) == s1);
}

TEST_CASE("zero_grad(param, set_to_none = false) sets the gradient to zeros", "[optim]") {
  Tensor p = param({1.0f, 2.0f});
  SGD opt({p}, {.lr = 0.1});
  p.set_grad(Tensor::ones({2}));
  opt.zero_grad(p, false);
  REQUIRE(p.grad().defined());
  CHECK(p.grad().to_vector<float>() == std::vector<float>{0.0f, 0.0f});
  opt.zero_grad(p);
  CHECK_FALSE(p.grad().defined());
  p.set_grad(Tensor::ones({2}));
  opt.zero_grad(false);
  CHECK(p.grad().to_vector<float>() == std::vector<float>{0.0f, 0.0f});
}

TEST_CASE("steps never write the gradient", "[optim]") {
  for (const std::string& name : testing::optimizer_names()) {
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      DYNAMIC_SECTION(name << " " << dtype_name(dtype)) {
        Tensor p = param({0.5f, -0.25f, 1.0f}, dtype);
        CapturedWarnings quiet;
        auto opt = testing::make_optimizer(name, {{"lr", 1e-2}, {"weight_decay", 0.1}},
                                           std::vector<Tensor>{p});
        Tensor g = Tensor::from_vector({0.1f, 0.2f, -0.3f}, {3}, dtype);
        std::vector<float> before = g.to_vector<float>();
        for (int t = 0; t < 3; ++t) {
          p.set_grad(g);
          opt->step();
        }
        CHECK(g.to_vector<float>() == before);
      }
    }
  }
}

TEST_CASE("a step over tensors of mixed sizes equals stepping each alone, bit for bit", "[optim]") {
  // The CPU shares a step out on the threads: tensors of 2^15 elements or more element-wise,
  // smaller ones whole to one thread each. Every tensor must come out as a step of its own gives
  // (one tensor of a few elements runs on the calling thread alone).
  const std::vector<int64_t> sizes = {40000, 3000, 5, 1200, 70000};
  for (const std::string& name : testing::optimizer_names()) {
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      DYNAMIC_SECTION(name << " " << dtype_name(dtype)) {
        manual_seed(21);
        std::vector<Tensor> together, grads;
        for (int64_t n : sizes) {
          together.push_back(Tensor::randn({n}).to(dtype));
          grads.push_back(Tensor::randn({n}).to(dtype));
        }
        const nlohmann::json options = {{"lr", 1e-2}, {"weight_decay", 0.1}};
        CapturedWarnings quiet;
        auto all = testing::make_optimizer(name, options, together);
        std::vector<Tensor> alone;
        std::vector<std::unique_ptr<optim::Optimizer>> each;
        for (const Tensor& t : together) {
          alone.push_back(t.clone());
          each.push_back(testing::make_optimizer(name, options, std::vector<Tensor>{alone.back()}));
        }
        for (int step = 0; step < 3; ++step) {
          for (size_t i = 0; i < sizes.size(); ++i) {
            together[i].set_grad(grads[i]);
            alone[i].set_grad(grads[i]);
            each[i]->step();
          }
          all->step();
        }
        for (size_t i = 0; i < sizes.size(); ++i) {
          INFO("tensor " << i << " of " << sizes[i] << " elements");
          CHECK(together[i].to_vector<float>() == alone[i].to_vector<float>());
        }
      }
    }
  }
}

TEST_CASE("group step counters advance on every step; group settings apply", "[optim]") {
  // A parameter that first gets a gradient late is debiased with the group's t: its first
  // Adam update is then not the plain -lr * sign(g) of step 1.
  Tensor a = param({1.0f}), b = param({1.0f});
  Adam opt({a, b}, {.lr = 0.1});
  a.set_grad(Tensor::ones({1}));
  opt.step();
  opt.step();  // b has no gradient: the counter still moves
  Tensor fresh = param({1.0f});
  Adam reference({fresh}, {.lr = 0.1});
  fresh.set_grad(Tensor::ones({1}));
  reference.step();
  b.set_grad(Tensor::ones({1}));
  opt.zero_grad(a);
  opt.step();
  CHECK(b.item() != fresh.item());

  Tensor c = param({1.0f}), d = param({1.0f});
  SGD sgd(std::vector<ParamGroup>{{{c}}, {{d}, 0.5, 0.0}}, {.lr = 0.1});
  CHECK(sgd.num_param_groups() == 2);
  CHECK(sgd.lr(1) == 0.5);
  CHECK(sgd.group_params(1)[0].is_same(d));
  sgd.set_lr(0, 0.2);
  c.set_grad(Tensor::ones({1}));
  d.set_grad(Tensor::ones({1}));
  sgd.step();
  CHECK(c.item() == Approx(0.8));
  CHECK(d.item() == Approx(0.5));
}

TEST_CASE("NaN gradients make NaN parameters in every dtype", "[optim]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (const std::string& name : testing::optimizer_names()) {
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      DYNAMIC_SECTION(name << " " << dtype_name(dtype)) {
        Tensor p = param({0.5f, -0.25f, nan}, dtype);
        auto opt = testing::make_optimizer(name, {{"lr", 1e-2}}, std::vector<Tensor>{p});
        for (int t = 0; t < 2; ++t) {
          p.set_grad(Tensor::from_vector({nan, 0.1f, 0.1f}, {3}, dtype));
          opt->step();
        }
        std::vector<float> v = p.to_vector<float>();
        CHECK(std::isnan(v[0]));
        CHECK(std::isnan(v[2]));
        if (name != "StableAdamW") CHECK(std::isfinite(v[1]));  // its RMS mixes elements
      }
    }
  }
}

TEST_CASE("float16 parameters round as float16 stores do", "[optim]") {
  // Normal, subnormal and near-overflow values; the last update overflows to infinity.
  const std::vector<float> p0 = {1.0f, 1e-5f, 60000.0f, -0.333f, 3e-8f, 65000.0f};
  const std::vector<float> g = {1e-4f, 3e-6f, -5000.0f, 0.1f, 1e-8f, -1000.0f};
  auto half = [](float x) { return to_float(to_float16(x)); };
  for (bool kahan : {false, true}) {
    DYNAMIC_SECTION((kahan ? "Kahan" : "plain")) {
      Tensor p = param(p0, DType::Float16);
      SGD opt({p}, {.lr = 1.0, .kahan_sum = kahan});
      std::vector<float> expected, comp(p0.size(), 0.0f);
      for (float v : p0) expected.push_back(half(v));
      for (int t = 0; t < 2; ++t) {
        p.set_grad(Tensor::from_vector(g, {int64_t(g.size())}, DType::Float16));
        opt.step();
        for (size_t i = 0; i < g.size(); ++i) {
          float delta = -half(g[i]);
          if (!kahan) {
            expected[i] = half(expected[i] + delta);
            continue;
          }
          float k32 = comp[i] + delta;
          float updated = half(expected[i] + half(k32));
          comp[i] = half(k32 + (expected[i] - updated));
          expected[i] = updated;
        }
        std::vector<float> got = p.to_vector<float>();
        for (size_t i = 0; i < got.size(); ++i) {
          INFO("step " << t << " element " << i << ": " << got[i] << " vs " << expected[i]);
          CHECK((got[i] == expected[i] || (std::isnan(got[i]) && std::isnan(expected[i]))));
        }
      }
    }
  }
}
