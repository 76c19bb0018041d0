// The C++ twins of every example in optimi's Utilities page (shared/seed/utilities.md), as the
// README shows them.
#include <catch2/catch.hpp>

#include <optimi/optimi.hpp>

using namespace optimi;

namespace {
struct MiniLM : nn::Module {
  MiniLM() {
    tok_embeddings = register_module("tok_embeddings", std::make_shared<nn::Embedding>(1000, 20));
    pos_embeddings = register_module("pos_embeddings", std::make_shared<nn::Embedding>(100, 20));
    norm = register_module("norm", std::make_shared<nn::LayerNorm>(20));
    layer1 = register_module("layer1", std::make_shared<nn::Linear>(20, 30));
    layer2 = register_module("layer2", std::make_shared<nn::Linear>(30, 1000));
  }
  std::shared_ptr<nn::Embedding> tok_embeddings, pos_embeddings;
  std::shared_ptr<nn::LayerNorm> norm;
  std::shared_ptr<nn::Linear> layer1, layer2;
};
}  // namespace

TEST_CASE("seed: param_groups_weight_decay with StableAdamW and decouple_lr", "[seed][utils]") {
  auto model = std::make_shared<MiniLM>();
  auto params = utils::param_groups_weight_decay(*model, 1e-5);
  optim::StableAdamW optimizer(params, {.lr = 1e-3, .decouple_lr = true});
  CHECK(optimizer.weight_decay(0) == 0.0);
  CHECK(optimizer.weight_decay(1) == 1e-5);
  // Embeddings are 2-D: decayed unless excluded by name.
  CHECK(params[1].params.size() == 4);  // tok, pos embeddings, layer1, layer2 weights
}

TEST_CASE("seed: additional_layers excludes token embeddings", "[seed][utils]") {
  auto model = std::make_shared<MiniLM>();
  auto params = utils::param_groups_weight_decay(*model, 1e-5, {"tok_embeddings"});
  REQUIRE(params[0].params.size() == 5);  // tok_embeddings.weight, norm.*, layer1.bias, layer2.bias
  CHECK(params[0].params[0].is_same(model->tok_embeddings->weight));
  CHECK(params[1].params.size() == 3);
}

TEST_CASE("seed: to_low_precision examples", "[seed][utils]") {
  auto seq = std::make_shared<nn::Sequential>();
  seq->push_back(std::make_shared<nn::Embedding>(1000, 128));
  seq->push_back(std::make_shared<nn::Linear>(128, 128));
  utils::to_low_precision(*seq, {.dtype = DType::BFloat16});
  auto sd = seq->state_dict();
  CHECK(sd["0.weight"].dtype() == DType::Float32);
  CHECK(sd["1.weight"].dtype() == DType::BFloat16);

  auto model = std::make_shared<MiniLM>();
  utils::to_low_precision(
      *model, {.dtype = DType::BFloat16, .fp32_modules = utils::module_types<nn::LayerNorm>()});
  CHECK(model->norm->weight.dtype() == DType::Float32);
  CHECK(model->tok_embeddings->weight.dtype() == DType::BFloat16);

  auto model2 = std::make_shared<MiniLM>();
  utils::to_low_precision(*model2, {.dtype = DType::BFloat16, .fp32_buffers = {}});
  CHECK(model2->layer1->weight.dtype() == DType::BFloat16);

  auto model3 = std::make_shared<MiniLM>();
  if (cuda_is_available()) {
    utils::to_low_precision(*model3, {.dtype = DType::BFloat16, .device = Device::cuda()});
    CHECK(model3->layer1->weight.device() == Device::cuda());
  } else {
    CHECK_THROWS_AS(
        utils::to_low_precision(*model3, {.dtype = DType::BFloat16, .device = Device::cuda()}),
        std::invalid_argument);
  }
}

TEST_CASE("seed: gradient release", "[seed][utils]") {
  auto model = std::make_shared<MiniLM>();
  optim::AdamW opt(model->parameters(), {.lr = 1e-3, .gradient_release = true});
  utils::prepare_for_gradient_release(*model, opt);
  Tensor before = model->layer2->weight.clone();
  Tensor tokens = Tensor::from_vector(std::vector<int64_t>{1, 2, 3, 4}, {4});
  Tensor h = model->layer1->forward(model->norm->forward(model->tok_embeddings->forward(tokens)));
  Tensor loss = nn::functional::cross_entropy(model->layer2->forward(h), tokens);
  loss.backward();
  CHECK_FALSE(model->layer2->weight.grad().defined());
  CHECK((model->layer2->weight - before).abs().max().item() > 0.0);
  utils::remove_gradient_release(*model);
}
