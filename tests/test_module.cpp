#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "optimi/autograd.hpp"
#include "optimi/nn.hpp"
#include "optimi/random.hpp"

using namespace optimi;
using namespace optimi::nn;

namespace {

struct Block : Module {
  Block() {
    norm = register_module("norm", std::make_shared<LayerNorm>(4));
    mlp = register_module("mlp", std::make_shared<Sequential>(std::make_shared<Linear>(4, 8),
                                                              std::make_shared<GELU>("tanh"),
                                                              std::make_shared<Linear>(8, 4)));
    register_buffer("steps", Tensor::zeros({1}, DType::Int64));
  }
  Tensor forward(const Tensor& x) const { return x + mlp->forward(norm->forward(x)); }
  std::string type_name() const override { return "Block"; }

  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Sequential> mlp;
};

struct Net : Module {
  Net() {
    scale = register_parameter("scale", Tensor::ones({1}));
    emb = register_module("emb", std::make_shared<Embedding>(10, 4));
    blocks = register_module("blocks", std::make_shared<ModuleList>());
    blocks->push_back(std::make_shared<Block>());
    blocks->push_back(std::make_shared<Block>());
    drop = register_module("drop", std::make_shared<Dropout>(0.5));
    head = register_module("head", std::make_shared<Linear>(4, 10, false));
    register_buffer("rope", Tensor::randn({4}));
  }

  Tensor scale;
  std::shared_ptr<Embedding> emb;
  std::shared_ptr<ModuleList> blocks;
  std::shared_ptr<Dropout> drop;
  std::shared_ptr<Linear> head;
};

template <class Pairs>
std::vector<std::string> names_of(const Pairs& pairs) {
  std::vector<std::string> names;
  for (const auto& [name, value] : pairs) names.push_back(name);
  return names;
}

std::vector<std::string> block_params(const std::string& p) {
  return {p + "norm.weight", p + "norm.bias",    p + "mlp.0.weight",
          p + "mlp.0.bias",  p + "mlp.2.weight", p + "mlp.2.bias"};
}

// A leaf that requires grad and refers to a tensor owned elsewhere (weight tying).
struct Tied : Module {
  explicit Tied(Tensor shared) { weight = register_parameter("weight", shared); }
  Tensor weight;
};

}  // namespace

TEST_CASE("Module traversal uses qualified names in registration order", "[nn]") {
  manual_seed(0);
  Net net;

  std::vector<std::string> params = {"scale", "emb.weight"};
  for (const auto& p : block_params("blocks.0.")) params.push_back(p);
  for (const auto& p : block_params("blocks.1.")) params.push_back(p);
  params.push_back("head.weight");
  CHECK(names_of(net.named_parameters()) == params);
  CHECK(net.parameters().size() == params.size());
  CHECK(names_of(net.named_parameters(false)) == std::vector<std::string>{"scale"});
  CHECK(net.named_parameters()[1].second.is_same(net.emb->weight));

  CHECK(names_of(net.named_buffers()) ==
        std::vector<std::string>{"rope", "blocks.0.steps", "blocks.1.steps"});
  CHECK(names_of(net.named_buffers(false)) == std::vector<std::string>{"rope"});
  CHECK(names_of(net.named_children()) ==
        std::vector<std::string>{"emb", "blocks", "drop", "head"});

  std::vector<std::string> modules = {"", "emb", "blocks"};
  std::vector<std::string> types = {"Module", "Embedding", "ModuleList"};
  for (std::string b : {"blocks.0", "blocks.1"}) {
    for (const auto& m : {b, b + ".norm", b + ".mlp", b + ".mlp.0", b + ".mlp.1", b + ".mlp.2"}) {
      modules.push_back(m);
    }
    for (const char* t : {"Block", "LayerNorm", "Sequential", "Linear", "GELU", "Linear"}) {
      types.push_back(t);
    }
  }
  modules.insert(modules.end(), {"drop", "head"});
  types.insert(types.end(), {"Dropout", "Linear"});
  const auto named = net.named_modules();
  CHECK(names_of(named) == modules);
  std::vector<std::string> actual_types;
  for (const auto& [name, module] : named) actual_types.push_back(module->type_name());
  CHECK(actual_types == types);
  CHECK(named.front().second == &net);

  std::vector<std::string> state = params;
  state.insert(state.end(), {"rope", "blocks.0.steps", "blocks.1.steps"});
  std::sort(state.begin(), state.end());
  CHECK(names_of(net.state_dict()) == state);
}

TEST_CASE("Shared tensors and modules are listed once under their first name", "[nn]") {
  manual_seed(1);
  Module root;
  auto emb = root.register_module("emb", std::make_shared<Embedding>(5, 3));
  auto tied = root.register_module("tied", std::make_shared<Tied>(emb->weight));
  auto shared = std::make_shared<Linear>(3, 3);
  root.register_module("a", shared);
  root.register_module("b", shared);

  CHECK(names_of(root.named_parameters()) ==
        std::vector<std::string>{"emb.weight", "a.weight", "a.bias"});
  CHECK(tied->weight.is_same(emb->weight));
  CHECK(names_of(root.named_modules()) == std::vector<std::string>{"", "emb", "tied", "a"});
  CHECK(names_of(root.named_children()) == std::vector<std::string>{"emb", "tied", "a"});
  // Like PyTorch, the state dict keeps every name, so either model layout can load it.
  CHECK(names_of(root.state_dict()) == std::vector<std::string>{"a.bias", "a.weight", "b.bias",
                                                                "b.weight", "emb.weight",
                                                                "tied.weight"});
}

TEST_CASE("Registration rejects bad names and values", "[nn]") {
  Module m;
  m.register_parameter("w", Tensor::zeros({2}));
  CHECK_THROWS_AS(m.register_parameter("w", Tensor::zeros({2})), std::invalid_argument);
  CHECK_THROWS_AS(m.register_buffer("w", Tensor::zeros({2})), std::invalid_argument);
  CHECK_THROWS_AS(m.register_module("w", std::make_shared<ReLU>()), std::invalid_argument);
  CHECK_THROWS_AS(m.register_parameter("a.b", Tensor::zeros({2})), std::invalid_argument);
  CHECK_THROWS_AS(m.register_parameter("", Tensor::zeros({2})), std::invalid_argument);
  CHECK_THROWS_AS(m.register_parameter("u", Tensor()), std::invalid_argument);
  CHECK_THROWS_AS(m.register_module("r", std::shared_ptr<ReLU>()), std::invalid_argument);
  CHECK_THROWS_AS(m.register_parameter("i", Tensor::zeros({2}, DType::Int64)),
                  std::invalid_argument);
  // A computed tensor becomes a leaf parameter that requires grad.
  Tensor x = Tensor::ones({2}).requires_grad_();
  Tensor& p = m.register_parameter("p", x * 2.0);
  CHECK(p.is_leaf());
  CHECK(p.requires_grad());
  Tensor& frozen = m.register_parameter("frozen", Tensor::ones({2}), false);
  CHECK_FALSE(frozen.requires_grad());
}

TEST_CASE("Module::to casts floating tensors in place and keeps identity", "[nn]") {
  manual_seed(2);
  Module m;
  auto lin = m.register_module("lin", std::make_shared<Linear>(3, 2));
  Tensor& counter = m.register_buffer("counter", Tensor::full({1}, 7.0, DType::Int64));
  Tensor& stats = m.register_buffer("stats", Tensor::ones({2}));
  const Tensor weight = lin->weight;
  const std::vector<Tensor> params = m.parameters();
  const std::vector<float> before = weight.to_vector<float>();
  lin->weight.set_grad(Tensor::ones({2, 3}));

  m.to(DType::BFloat16);
  CHECK(weight.dtype() == DType::BFloat16);
  CHECK(lin->weight.is_same(weight));
  CHECK(params[0].is_same(weight));
  CHECK(params[1].dtype() == DType::BFloat16);
  CHECK(weight.requires_grad());
  CHECK(weight.grad().dtype() == DType::BFloat16);
  CHECK(stats.dtype() == DType::BFloat16);
  CHECK(counter.dtype() == DType::Int64);
  CHECK(counter.item() == 7.0);
  const std::vector<float> after = weight.to_vector<float>();
  for (size_t i = 0; i < before.size(); ++i) {
    CHECK(after[i] == to_float(to_bfloat16(before[i])));
  }

  m.to(DType::Float32);
  CHECK(weight.dtype() == DType::Float32);
  CHECK(m.named_parameters()[0].second.is_same(weight));
  CHECK_THROWS_AS(m.to(DType::Int64), std::invalid_argument);
  m.to(Device::cpu());
  CHECK(weight.device() == Device::cpu());
}

TEST_CASE("train and eval reach every submodule", "[nn]") {
  manual_seed(3);
  Net net;
  CHECK(net.is_training());
  net.eval();
  for (const auto& [name, module] : net.named_modules()) CHECK_FALSE(module->is_training());
  Tensor x = Tensor::randn({4, 4});
  CHECK(net.drop->forward(x).to_vector<float>() == x.to_vector<float>());
  net.train();
  for (const auto& [name, module] : net.named_modules()) CHECK(module->is_training());
  net.blocks->train(false);
  CHECK(net.is_training());
  CHECK_FALSE(net.blocks->at<Block>(1)->mlp->is_training());
}

TEST_CASE("zero_grad drops or zeroes gradients", "[nn]") {
  manual_seed(4);
  Linear lin(3, 2);
  lin.forward(Tensor::randn({5, 3})).sum().backward();
  const Tensor grad = lin.weight.grad();
  REQUIRE(grad.defined());
  REQUIRE(lin.bias.grad().defined());

  lin.zero_grad(false);
  CHECK(lin.weight.grad().is_same(grad));
  for (float v : grad.to_vector<float>()) CHECK(v == 0.0f);
  for (float v : lin.bias.grad().to_vector<float>()) CHECK(v == 0.0f);

  lin.zero_grad();
  CHECK_FALSE(lin.weight.grad().defined());
  CHECK_FALSE(lin.bias.grad().defined());
  lin.zero_grad(false);  // nothing to zero
  CHECK_FALSE(lin.weight.grad().defined());
}

TEST_CASE("load_state_dict copies values and reports mismatches", "[nn]") {
  manual_seed(5);
  Net source;
  Net target;
  REQUIRE(source.emb->weight.to_vector<float>() != target.emb->weight.to_vector<float>());
  const Tensor target_weight = target.emb->weight;

  target.load_state_dict(source.state_dict());
  CHECK(target.emb->weight.is_same(target_weight));
  for (const auto& [name, t] : source.state_dict()) {
    CHECK(target.state_dict().at(name).to_vector<double>() == t.to_vector<double>());
  }

  // The state dict shares data with the model, but writing through it is not recorded.
  Linear lin(2, 2);
  auto state = lin.state_dict();
  CHECK_FALSE(state.at("weight").requires_grad());
  state.at("weight").fill_(3.0);
  CHECK(lin.weight.to_vector<float>() == std::vector<float>(4, 3.0f));

  SECTION("dtype is converted") {
    std::map<std::string, Tensor> half = {{"weight", Tensor::full({2, 2}, 0.5, DType::BFloat16)},
                                          {"bias", Tensor::full({2}, -1.0, DType::Float64)}};
    lin.load_state_dict(half);
    CHECK(lin.weight.dtype() == DType::Float32);
    CHECK(lin.weight.to_vector<float>() == std::vector<float>(4, 0.5f));
    CHECK(lin.bias.to_vector<float>() == std::vector<float>(2, -1.0f));
  }
  SECTION("missing and unexpected keys") {
    auto partial = lin.state_dict();
    partial.erase("bias");
    partial.emplace("extra", Tensor::zeros({1}));
    try {
      lin.load_state_dict(partial);
      FAIL("expected std::invalid_argument");
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      CHECK_THAT(message, Catch::Contains("missing keys: 'bias'"));
      CHECK_THAT(message, Catch::Contains("unexpected keys: 'extra'"));
    }
    partial.at("weight") = Tensor::full({2, 2}, 9.0);
    lin.load_state_dict(partial, false);
    CHECK(lin.weight.to_vector<float>() == std::vector<float>(4, 9.0f));
  }
  SECTION("shape mismatch names the key and both shapes, and copies nothing") {
    const std::vector<float> bias = lin.bias.to_vector<float>();
    std::map<std::string, Tensor> bad = {{"weight", Tensor::zeros({2, 3})},
                                         {"bias", Tensor::zeros({2})}};
    try {
      lin.load_state_dict(bad, false);
      FAIL("expected std::invalid_argument");
    } catch (const std::invalid_argument& e) {
      const std::string message = e.what();
      CHECK_THAT(message, Catch::Contains("'weight'"));
      CHECK_THAT(message, Catch::Contains(shape_str({2, 2})));
      CHECK_THAT(message, Catch::Contains(shape_str({2, 3})));
    }
    CHECK(lin.bias.to_vector<float>() == bias);
  }
}

TEST_CASE("Layer initialisation follows PyTorch", "[nn]") {
  manual_seed(6);
  Linear lin(16, 64);
  CHECK(lin.weight.shape() == Shape{64, 16});
  CHECK(lin.bias.shape() == Shape{64});
  CHECK(lin.weight.requires_grad());
  float max_abs = 0.0f;
  for (float v : lin.weight.to_vector<float>()) max_abs = std::max(max_abs, std::abs(v));
  for (float v : lin.bias.to_vector<float>()) max_abs = std::max(max_abs, std::abs(v));
  CHECK(max_abs <= 0.25f);
  CHECK(max_abs > 0.2f);  // 1088 draws from U(-0.25, 0.25) come close to the bound

  manual_seed(6);
  Linear again(16, 64);
  CHECK(again.weight.to_vector<float>() == lin.weight.to_vector<float>());
  CHECK(again.bias.to_vector<float>() == lin.bias.to_vector<float>());

  Linear no_bias(4, 3, false);
  CHECK_FALSE(no_bias.bias.defined());
  CHECK(names_of(no_bias.named_parameters()) == std::vector<std::string>{"weight"});

  Embedding emb(200, 50);
  const std::vector<float> w = emb.weight.to_vector<float>();
  double mean = 0.0;
  double square = 0.0;
  for (float v : w) {
    mean += v;
    square += double(v) * v;
  }
  mean /= double(w.size());
  CHECK(std::abs(mean) < 0.05);
  CHECK(std::abs(square / double(w.size()) - 1.0) < 0.05);

  LayerNorm norm(5);
  CHECK(norm.weight.to_vector<float>() == std::vector<float>(5, 1.0f));
  CHECK(norm.bias.to_vector<float>() == std::vector<float>(5, 0.0f));
  LayerNorm plain(5, 1e-6, false);
  CHECK(plain.parameters().empty());

  CHECK_THROWS_AS(Linear(-1, 2), std::invalid_argument);
  CHECK_THROWS_AS(Dropout(1.5), std::invalid_argument);
  CHECK_THROWS_AS(GELU("exact"), std::invalid_argument);
  CHECK(GELU("tanh").approximate == functional::GeluApproximation::Tanh);
}

TEST_CASE("Layers forward through nn::functional", "[nn]") {
  manual_seed(7);
  auto l1 = std::make_shared<Linear>(3, 5);
  auto act = std::make_shared<SiLU>();
  auto l2 = std::make_shared<Linear>(5, 2);
  Sequential seq(l1, act);
  seq.push_back(l2);
  CHECK(seq.size() == 3);
  CHECK(seq[2] == l2);
  CHECK_THROWS_AS(seq[3], std::invalid_argument);

  Tensor x = Tensor::randn({4, 3});
  Tensor expected = functional::linear(
      functional::silu(functional::linear(x, l1->weight, l1->bias)), l2->weight, l2->bias);
  CHECK(seq(x).to_vector<float>() == expected.to_vector<float>());
  CHECK(ReLU()(x).to_vector<float>() == functional::relu(x).to_vector<float>());
  CHECK(Mish()(x).to_vector<float>() == functional::mish(x).to_vector<float>());
  CHECK(GELU()(x).to_vector<float>() == functional::gelu(x).to_vector<float>());

  Embedding emb(4, 3);
  Tensor rows = emb(Tensor::from_vector(std::vector<int64_t>{2, 0}, {2}));
  const std::vector<float> w = emb.weight.to_vector<float>();
  CHECK(rows.to_vector<float>() == std::vector<float>{w[6], w[7], w[8], w[0], w[1], w[2]});

  ModuleList list;
  list.push_back(std::make_shared<Linear>(2, 2));
  list.push_back(std::make_shared<ReLU>());
  CHECK(list.size() == 2);
  CHECK(list.at<Linear>(0)->weight.shape() == Shape{2, 2});
  CHECK_THROWS_AS(list.at<LayerNorm>(1), std::invalid_argument);
  CHECK_THROWS_AS(list[2], std::invalid_argument);
  size_t count = 0;
  for (const auto& module : list) count += module != nullptr;
  CHECK(count == 2);
}
