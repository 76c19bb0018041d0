// Optimizer::save / Optimizer::load: bit-identical continuation, and rejection of files for other
// optimizers or parameters.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <vector>

#include "optim_factory.hpp"
#include "optimi/nn/safetensors.hpp"
#include "optimi/optim.hpp"
#include "optimi/random.hpp"
#include "optimi/warning.hpp"

using namespace optimi;
using namespace optimi::optim;
using nlohmann::json;

namespace {

std::filesystem::path temp_file(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("optimi_checkpoint_" + name + ".safetensors");
}

std::vector<Tensor> make_params(DType dtype) {
  manual_seed(7);
  return {Tensor::randn({4, 3}, dtype).requires_grad_(), Tensor::randn({5}, dtype).requires_grad_(),
          Tensor::randn({2, 2, 2}, dtype).requires_grad_()};
}

std::vector<Tensor> copies(const std::vector<Tensor>& params) {
  std::vector<Tensor> out;
  for (const Tensor& p : params) out.push_back(p.detach().clone().requires_grad_());
  return out;
}

std::vector<std::vector<float>> values(const std::vector<Tensor>& params) {
  std::vector<std::vector<float>> out;
  for (const Tensor& p : params) out.push_back(p.to_vector<float>());
  return out;
}

// Two groups, a schedule, and (under gradient release) accumulation on every other call.
struct Run {
  std::string name;
  DType dtype;
  bool release;

  std::unique_ptr<Optimizer> make(const std::vector<Tensor>& params) const {
    json options = {{"lr", 1e-2}, {"weight_decay", 1e-2}};
    if (name == "SGD") options["momentum"] = 0.9;
    if (name == "Ranger") options["k"] = 3;
    std::vector<ParamGroup> groups{{{params[0], params[1]}}, {{params[2]}, 5e-3}};
    return testing::make_optimizer(name, options, groups, release);
  }

  void step(Optimizer& opt, const std::vector<Tensor>& params, int t) const {
    manual_seed(1000 + uint64_t(t));
    opt.set_lr(0, 1e-2 * (1.0 - 0.05 * t));
    opt.set_optimizer_accumulation(release && t % 2 == 0);
    for (const Tensor& p : params) {
      Tensor(p).set_grad(Tensor::randn(p.shape(), dtype));
      if (release) {
        opt.step(p);
        opt.zero_grad(p);
      }
    }
    if (!release) {
      opt.step();
      opt.zero_grad();
    }
  }
};

}  // namespace

TEST_CASE("save/load continues bit-identically", "[optim]") {
  for (const std::string& name : testing::optimizer_names()) {
    for (DType dtype : {DType::Float32, DType::BFloat16}) {
      for (bool release : {false, true}) {
        DYNAMIC_SECTION(name << " " << dtype_name(dtype) << (release ? " gradient release" : "")) {
          Run run{name, dtype, release};
          std::vector<Tensor> reference = make_params(dtype);
          std::vector<Tensor> resumed = copies(reference);
          auto uninterrupted = run.make(reference);
          auto first = run.make(resumed);
          const int total = 9, saved_at = 5;
          for (int t = 0; t < saved_at; ++t) {
            run.step(*uninterrupted, reference, t);
            run.step(*first, resumed, t);
          }
          auto path = temp_file(name);
          first->save(path);
          first.reset();
          auto second = run.make(resumed);
          second->load(path);
          std::filesystem::remove(path);
          CHECK(second->lr(0) == uninterrupted->lr(0));
          for (int t = saved_at; t < total; ++t) {
            run.step(*uninterrupted, reference, t);
            run.step(*second, resumed, t);
            CHECK(values(resumed) == values(reference));
          }
        }
      }
    }
  }
}

TEST_CASE("loading a checkpoint for other parameters or another optimizer throws", "[optim]") {
  std::vector<Tensor> params = make_params(DType::Float32);
  AdamW saved(params, {.lr = 1e-3});
  for (const Tensor& p : params) Tensor(p).set_grad(Tensor::ones(p.shape()));
  saved.step();
  auto path = temp_file("mismatch");
  saved.save(path);

  auto load_message = [&](Optimizer& opt) {
    try {
      opt.load(path);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    FAIL("no std::invalid_argument thrown");
    return std::string();
  };
  SECTION("optimizer type") {
    Adam other(params, {.lr = 1e-3});
    std::string message = load_message(other);
    CHECK_THAT(message, Catch::Contains("AdamW") && Catch::Contains("Adam"));
  }
  SECTION("parameter count") {
    AdamW other(std::vector<Tensor>{params[0], params[1]}, {.lr = 1e-3});
    CHECK_THAT(load_message(other), Catch::Contains("3 parameters") && Catch::Contains("has 2"));
  }
  SECTION("shape") {
    std::vector<Tensor> changed = params;
    changed[1] = Tensor::zeros({6}).requires_grad_();
    AdamW other(changed, {.lr = 1e-3});
    CHECK_THAT(load_message(other),
               Catch::Contains("parameter 1") && Catch::Contains("[5]") && Catch::Contains("[6]"));
  }
  SECTION("dtype") {
    std::vector<Tensor> changed = params;
    changed[2] = Tensor::zeros({2, 2, 2}, DType::BFloat16).requires_grad_();
    AdamW other(changed, {.lr = 1e-3});
    CHECK_THAT(load_message(other), Catch::Contains("parameter 2") && Catch::Contains("float32") &&
                                        Catch::Contains("bfloat16"));
  }
  SECTION("groups") {
    std::vector<ParamGroup> groups{{{params[0]}}, {{params[1], params[2]}}};
    AdamW other(groups, {.lr = 1e-3});
    CHECK_THAT(load_message(other), Catch::Contains("parameter groups"));
  }
  SECTION("a failed load leaves the optimizer as it was") {
    Adam other(params, {.lr = 1e-3});
    CHECK_THROWS_AS(other.load(path), std::invalid_argument);
    CHECK(other.lr(0) == 1e-3);
    other.step();
  }
  std::filesystem::remove(path);
}

TEST_CASE("loading a file that is no optimizer checkpoint throws std::runtime_error", "[optim]") {
  std::vector<Tensor> params = make_params(DType::Float32);
  SGD opt(params, {.lr = 0.1, .momentum = 0.9});
  auto path = temp_file("corrupt");
  SECTION("missing file") {
    CHECK_THROWS_AS(opt.load(path), std::runtime_error);
  }
  SECTION("garbage") {
    std::ofstream(path) << "not a safetensors file at all";
    CHECK_THROWS_AS(opt.load(path), std::runtime_error);
  }
  SECTION("model weights") {
    nn::save_safetensors(path, {{"weight", params[0]}}, {});
    CHECK_THROWS_AS(opt.load(path), std::runtime_error);
  }
  SECTION("malformed metadata") {
    for (const Tensor& p : params) Tensor(p).set_grad(Tensor::ones(p.shape()));
    opt.step();
    opt.save(path);
    auto file = nn::load_safetensors(path);
    file.metadata["state"] = "[{\"initialized\": 1}";
    nn::save_safetensors(path, file.tensors, file.metadata);
    CHECK_THROWS_AS(opt.load(path), std::runtime_error);
  }
  SECTION("missing state tensor") {
    for (const Tensor& p : params) Tensor(p).set_grad(Tensor::ones(p.shape()));
    opt.step();
    opt.save(path);
    auto file = nn::load_safetensors(path);
    file.tensors.erase("state.1.exp_avg");
    nn::save_safetensors(path, file.tensors, file.metadata);
    CHECK_THROWS_AS(opt.load(path), std::runtime_error);
  }
  std::filesystem::remove(path);
}

TEST_CASE("a checkpoint's option values get the constructor's checks", "[optim]") {
  // An edited file must not reach the step: Ranger with k = 0 divides by zero there.
  std::vector<Tensor> params = make_params(DType::Float32);
  Ranger opt(params, {.lr = 0.1});
  const std::filesystem::path path = temp_file("saved"), edited = temp_file("edited");
  opt.save(path);
  auto edit = [&](const char* field, const char* key, const json& value) {
    auto file = nn::load_safetensors(path);
    json j = json::parse(file.metadata.at(field));
    (j.is_array() ? j[0] : j)[key] = value;
    file.metadata[field] = j.dump();
    nn::save_safetensors(edited, file.tensors, file.metadata);
  };
  for (const auto& [field, key, value, message] :
       {std::tuple{"hyperparameters", "k", json(0), "lookahead steps"},
        std::tuple{"hyperparameters", "alpha", json(2.0), "lookahead alpha"},
        std::tuple{"hyperparameters", "eps", json(-1.0), "epsilon"},
        std::tuple{"groups", "lr", json(-5.0), "learning rate"},
        std::tuple{"groups", "weight_decay", json(nullptr), "malformed"}}) {
    INFO(key);
    edit(field, key, value);
    CHECK_THROWS_AS(opt.load(edited), std::runtime_error);
    CHECK_THROWS_WITH(opt.load(edited), Catch::Contains(message));
    // The failed load left the optimizer as it was.
    CHECK(opt.lr(0) == 0.1);
    for (const Tensor& p : params) Tensor(p).set_grad(Tensor::ones(p.shape()));
    CHECK_NOTHROW(opt.step());
  }
  std::filesystem::remove(path);
  std::filesystem::remove(edited);
}

TEST_CASE("after load, gradient release follows the live groups' learning rates", "[optim]") {
  Tensor p = Tensor::ones({3}).requires_grad_();
  SGD opt({p}, {.lr = 0.1, .gradient_release = true});
  p.set_grad(Tensor::ones({3}));
  opt.step(p);
  auto path = temp_file("relink");
  opt.save(path);
  SGD resumed({p}, {.lr = 0.1, .gradient_release = true});
  resumed.load(path);
  std::filesystem::remove(path);
  resumed.set_lr(0, 0.0);
  std::vector<float> before = p.to_vector<float>();
  p.set_grad(Tensor::ones({3}));
  resumed.step(p);
  CHECK(p.to_vector<float>() == before);
}
