#include <catch2/catch.hpp>

#include <optimi/optimi.hpp>

#include "optim_factory.hpp"

using namespace optimi;
using optimi::testing::make_optimizer;
using optimi::testing::optimizer_names;

namespace {

// optimi's own test model: a rotary-embedding child holding float32 buffers, an embedding, a
// norm, a head and a root buffer.
struct RotaryEmbedding : nn::Module {
  RotaryEmbedding() {
    register_buffer("cos", Tensor::ones({4, 2}));
    register_buffer("sin", Tensor::zeros({4, 2}));
    register_buffer("positions", Tensor::arange(4));
  }
  std::string type_name() const override { return "RotaryEmbedding"; }
};
struct Attention : nn::Module {
  Attention() {
    rope = register_module("rope", std::make_shared<RotaryEmbedding>());
    q = register_module("q", std::make_shared<nn::Linear>(8, 8));
    k = register_module("k", std::make_shared<nn::Linear>(8, 8));
    v = register_module("v", std::make_shared<nn::Linear>(8, 8));
  }
  std::shared_ptr<RotaryEmbedding> rope;
  std::shared_ptr<nn::Linear> q, k, v;
};
struct TinyLM : nn::Module {
  TinyLM() {
    tok_embeddings = register_module("tok_embeddings", std::make_shared<nn::Embedding>(16, 8));
    attn = register_module("attn", std::make_shared<Attention>());
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(8));
    head = register_module("head", std::make_shared<nn::Linear>(8, 16));
    register_buffer("global_scale", Tensor::ones({1}));
  }
  std::shared_ptr<nn::Embedding> tok_embeddings;
  std::shared_ptr<Attention> attn;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> head;
};

std::map<std::string, DType> dtypes(const nn::Module& m) {
  std::map<std::string, DType> out;
  for (auto& [name, t] : m.state_dict()) out[name] = t.dtype();
  return out;
}

// optimi's MLP for the weight-decay tests.
struct MLP : nn::Module {
  MLP() {
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(4));
    fc1 = register_module("fc1", std::make_shared<nn::Linear>(4, 8));
    fc2 = register_module("fc2", std::make_shared<nn::Linear>(8, 1, false));
  }
  Tensor forward(const Tensor& x) {
    return fc2->forward(nn::functional::mish(fc1->forward(norm->forward(x))));
  }
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> fc1, fc2;
};

}  // namespace

TEST_CASE("to_low_precision defaults keep embeddings and rope buffers in float32",
          "[utils][low_precision]") {
  manual_seed(0);
  TinyLM model;
  Tensor q_weight = model.attn->q->weight;  // a handle taken before the cast
  nn::Module& returned = utils::to_low_precision(model);
  CHECK(&returned == &model);
  auto d = dtypes(model);
  CHECK(d["tok_embeddings.weight"] == DType::Float32);
  CHECK(d["attn.q.weight"] == DType::BFloat16);
  CHECK(d["attn.v.bias"] == DType::BFloat16);
  CHECK(d["attn.rope.cos"] == DType::Float32);
  CHECK(d["attn.rope.sin"] == DType::Float32);
  CHECK(d["attn.rope.positions"] == DType::Int64);  // never cast
  CHECK(d["norm.weight"] == DType::BFloat16);
  CHECK(d["head.weight"] == DType::BFloat16);
  CHECK(d["global_scale"] == DType::BFloat16);  // the root's name "" matches no keyword
  CHECK(q_weight.dtype() == DType::BFloat16);   // identity survives
  CHECK(q_weight.is_same(model.attn->q->weight));
  CHECK(model.parameters().size() == 11);
}

TEST_CASE("to_low_precision with only LayerNorm in float32", "[utils][low_precision]") {
  TinyLM model;
  utils::to_low_precision(
      model, {.dtype = DType::BFloat16, .fp32_modules = utils::module_types<nn::LayerNorm>()});
  auto d = dtypes(model);
  CHECK(d["norm.weight"] == DType::Float32);
  CHECK(d["norm.bias"] == DType::Float32);
  CHECK(d["tok_embeddings.weight"] == DType::BFloat16);
  CHECK(d["attn.rope.cos"] == DType::Float32);
}

TEST_CASE("to_low_precision with no float32 buffers", "[utils][low_precision]") {
  TinyLM model;
  utils::to_low_precision(model, {.dtype = DType::Float16, .fp32_buffers = {}});
  auto d = dtypes(model);
  CHECK(d["attn.rope.cos"] == DType::Float16);
  CHECK(d["attn.rope.positions"] == DType::Int64);
  CHECK(d["tok_embeddings.weight"] == DType::Float32);
}

TEST_CASE("a type selector restores float32 buffers, without inheritance",
          "[utils][low_precision]") {
  TinyLM model;
  utils::to_low_precision(
      model, {.dtype = DType::BFloat16, .fp32_buffers = utils::module_types<RotaryEmbedding>()});
  auto d = dtypes(model);
  CHECK(d["attn.rope.cos"] == DType::Float32);
  CHECK(d["global_scale"] == DType::BFloat16);

  // Types are not inherited by children: Attention matches, its rope child does not.
  TinyLM model2;
  utils::to_low_precision(
      model2, {.dtype = DType::BFloat16, .fp32_buffers = utils::module_types<Attention>()});
  CHECK(dtypes(model2)["attn.rope.cos"] == DType::BFloat16);

  // Keywords are: "attn" matches attn.rope too. Keywords compare lower-cased against the name.
  TinyLM model3;
  utils::to_low_precision(model3, {.dtype = DType::BFloat16, .fp32_buffers = {"ATTN"}});
  CHECK(dtypes(model3)["attn.rope.cos"] == DType::Float32);
  // The empty keyword matches every module, the root included.
  TinyLM model4;
  utils::to_low_precision(model4, {.dtype = DType::BFloat16, .fp32_buffers = {""}});
  CHECK(dtypes(model4)["global_scale"] == DType::Float32);
}

TEST_CASE("kept in float32 means cast to float32; subclasses match fp32_modules",
          "[utils][low_precision]") {
  struct MyNorm : nn::LayerNorm {
    MyNorm() : nn::LayerNorm(4) {}
  };
  nn::Sequential model;
  model.push_back(std::make_shared<MyNorm>());
  model.push_back(std::make_shared<nn::Linear>(4, 4));
  model.to(DType::Float64);
  utils::to_low_precision(
      model, {.dtype = DType::BFloat16, .fp32_modules = utils::module_types<nn::LayerNorm>()});
  auto d = dtypes(model);
  CHECK(d["0.weight"] == DType::Float32);
  CHECK(d["1.weight"] == DType::BFloat16);
  CHECK_THROWS_AS(utils::to_low_precision(model, {.dtype = DType::Int64}), std::invalid_argument);
}

TEST_CASE("to_low_precision on a CPU-only build refuses a CUDA device",
          "[utils][low_precision][errors]") {
  if (cuda_is_available())
    SUCCEED("a GPU is present: covered by the CUDA suite");
  else {
    TinyLM model;
    CHECK_THROWS_AS(
        utils::to_low_precision(model, {.dtype = DType::BFloat16, .device = Device::cuda()}),
        std::invalid_argument);
  }
}

TEST_CASE("param_groups_weight_decay splits no-decay first", "[utils][param_groups]") {
  MLP model;
  auto groups = utils::param_groups_weight_decay(model, 1e-5);
  REQUIRE(groups.size() == 2);
  CHECK(groups[0].weight_decay == 0.0);
  CHECK(groups[1].weight_decay == 1e-5);
  CHECK_FALSE(groups[0].lr.has_value());
  // no decay: norm.weight, norm.bias, fc1.bias; decay: fc1.weight, fc2.weight.
  REQUIRE(groups[0].params.size() == 3);
  CHECK(groups[0].params[0].is_same(model.norm->weight));
  CHECK(groups[0].params[1].is_same(model.norm->bias));
  CHECK(groups[0].params[2].is_same(model.fc1->bias));
  REQUIRE(groups[1].params.size() == 2);
  CHECK(groups[1].params[0].is_same(model.fc1->weight));

  auto extra = utils::param_groups_weight_decay(model, 1e-2, {"fc2"});
  CHECK(extra[0].params.size() == 4);
  CHECK(extra[1].params.size() == 1);

  model.fc1->weight.requires_grad_(false);  // frozen parameters are in neither group
  auto frozen = utils::param_groups_weight_decay(model);
  CHECK(frozen[0].params.size() + frozen[1].params.size() == 4);
  CHECK_THROWS_AS(utils::param_groups_weight_decay(model, -1.0), std::invalid_argument);
}

TEST_CASE("every optimizer keeps the groups' weight decay over its default",
          "[utils][param_groups]") {
  for (const std::string& name : optimizer_names()) {
    for (bool additional : {false, true}) {
      DYNAMIC_SECTION(name << (additional ? " with additional layer" : "")) {
        MLP model;
        auto groups = utils::param_groups_weight_decay(
            model, 1e-5, additional ? std::vector<std::string>{"fc1"} : std::vector<std::string>{});
        size_t no_decay = groups[0].params.size();
        auto opt = make_optimizer(name, {{"lr", 1e-3}, {"weight_decay", 0.5}}, groups);
        REQUIRE(opt->num_param_groups() == 2);
        CHECK(opt->weight_decay(0) == 0.0);
        CHECK(opt->weight_decay(1) == 1e-5);
        CHECK(opt->group_params(0).size() == no_decay);
        CHECK(no_decay == (additional ? 4u : 3u));
        // One training step moves the parameters with these groups.
        Tensor x = Tensor::randn({5, 4});
        model.forward(x).pow(2.0).mean().backward();
        opt->step();
        opt->zero_grad();
      }
    }
  }
}

TEST_CASE("the decouple_lr warning follows the groups' weight decay",
          "[utils][param_groups][warning]") {
  std::vector<std::string> warnings;
  WarningHandler previous =
      set_warning_handler([&](const std::string& m) { warnings.push_back(m); });
  MLP model;
  {
    auto groups = utils::param_groups_weight_decay(model, 0.0);
    optim::StableAdamW opt(groups, {.lr = 1e-3, .weight_decay = 0.1, .decouple_lr = true});
    CHECK(warnings.empty());  // every group overrides the high default with 0
  }
  {
    std::vector<optim::ParamGroup> groups = {{model.norm->parameters(), std::nullopt, 0.0},
                                             {model.fc1->parameters(), std::nullopt, 2e-3},
                                             {model.fc2->parameters(), std::nullopt, 5e-3}};
    optim::AdamW opt(groups, {.lr = 1e-3, .decouple_lr = true});
    REQUIRE(warnings.size() == 1);
    CHECK_THAT(warnings[0], Catch::Contains("weight_decay") && Catch::Contains("decouple_lr") &&
                                Catch::Contains("0.005"));
  }
  set_warning_handler(previous);
}

TEST_CASE("gradient release trains like a plain optimizer", "[utils][gradient_release]") {
  auto train = [](bool release) {
    manual_seed(3);
    MLP model;
    optim::AdamW opt(model.parameters(), {.lr = 1e-2, .gradient_release = release});
    if (release) utils::prepare_for_gradient_release(model, opt);
    for (int step = 0; step < 5; ++step) {
      Tensor x = Tensor::randn({8, 4});
      Tensor y = Tensor::randn({8, 1});
      nn::functional::mse_loss(model.forward(x), y).backward();
      if (release) {
        for (const Tensor& p : model.parameters())
          CHECK_FALSE(p.grad().defined());  // freed by the hooks
      }
      opt.step();  // harmless under release
      opt.zero_grad();
    }
    std::vector<float> out;
    for (const Tensor& p : model.parameters())
      for (float v : p.to_vector<float>()) out.push_back(v);
    return out;
  };
  std::vector<float> plain = train(false), released = train(true);
  REQUIRE(plain.size() == released.size());
  for (size_t i = 0; i < plain.size(); ++i)
    CHECK(released[i] == Approx(plain[i]).margin(1e-6).epsilon(1e-5));
}

TEST_CASE("remove_gradient_release restores ordinary backward", "[utils][gradient_release]") {
  MLP model;
  optim::AdamW opt(model.parameters(), {.lr = 1e-2, .gradient_release = true});
  utils::prepare_for_gradient_release(model, opt);
  REQUIRE(model.gradient_release_hooks().has_value());
  utils::remove_gradient_release(model);
  CHECK_FALSE(model.gradient_release_hooks().has_value());
  std::vector<float> before = model.fc1->weight.to_vector<float>();
  nn::functional::mse_loss(model.forward(Tensor::randn({4, 4})), Tensor::zeros({4, 1})).backward();
  for (const Tensor& p : model.parameters()) CHECK(p.grad().defined());
  CHECK(model.fc1->weight.to_vector<float>() == before);
  for (const Tensor& p : model.parameters()) CHECK_FALSE(p.has_post_accumulate_grad_hooks());
}

TEST_CASE("gradient release refusals, warning and existing hooks",
          "[utils][gradient_release][errors]") {
  MLP model;
  optim::AdamW plain(model.parameters(), {.lr = 1e-2});
  CHECK_THROWS_WITH(utils::prepare_for_gradient_release(model, plain),
                    Catch::Contains("gradient_release=True"));

  optim::AdamW opt(model.parameters(), {.lr = 1e-2, .gradient_release = true});
  RemovableHandle existing = model.fc2->weight.register_post_accumulate_grad_hook([](Tensor&) {});
  CHECK_THROWS_WITH(utils::prepare_for_gradient_release(model, opt),
                    Catch::Contains("ignore_existing_hooks"));
  // The hooks registered before the refusal were removed again.
  CHECK_FALSE(model.norm->weight.has_post_accumulate_grad_hooks());
  CHECK_FALSE(model.gradient_release_hooks().has_value());

  utils::prepare_for_gradient_release(model, opt, true);
  CHECK(model.norm->weight.has_post_accumulate_grad_hooks());
  utils::remove_gradient_release(model);
  CHECK(model.fc2->weight.has_post_accumulate_grad_hooks());  // the user's own hook stays
  existing.remove();

  std::vector<std::string> warnings;
  WarningHandler previous =
      set_warning_handler([&](const std::string& m) { warnings.push_back(m); });
  utils::remove_gradient_release(model);
  set_warning_handler(previous);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("does not have any gradient release"));
}
