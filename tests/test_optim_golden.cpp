// Every case of ../shared/golden/optimizers.json (optimi's trajectories) and the AdamW trajectory
// of ../shared/golden/mlp.json, under the golden files' tolerance rules.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "optim_factory.hpp"
#include "optimi/autograd.hpp"
#include "optimi/optim.hpp"
#include "optimi/warning.hpp"

using namespace optimi;
using nlohmann::json;

namespace {

// Builds strings by streaming (GCC 12 misreports -Wrestrict on chains of std::string +).
template <class... Args>
std::string str(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

// Parsed once: the file is several megabytes and every section reads it.
const json* load_golden(const std::string& name) {
  static std::map<std::string, std::unique_ptr<json>> cache;
  auto& slot = cache[name];
  if (!slot) {
    std::filesystem::path path = std::filesystem::path(OPTIMI_SHARED_DIR) / "golden" / name;
    std::ifstream in(path);
    if (!in) return nullptr;
    slot = std::make_unique<json>(json::parse(in));
  }
  return slot.get();
}

const json& golden(const std::string& name) {
  const json* j = load_golden(name);
  if (j == nullptr) {
    FAIL("golden file " << (std::filesystem::path(OPTIMI_SHARED_DIR) / "golden" / name).string()
                        << " is missing: the optimizer tests need ../shared beside the project");
  }
  return *j;
}

DType dtype_of(const std::string& name) {
  if (name == "float32") return DType::Float32;
  if (name == "bfloat16") return DType::BFloat16;
  throw std::invalid_argument(str("unexpected dtype ", name));
}

std::vector<float> floats(const json& values) {
  std::vector<float> out;
  out.reserve(values.size());
  for (const json& v : values) out.push_back(static_cast<float>(v.get<double>()));
  return out;
}

Tensor tensor(const json& values, const json& shape, DType dtype) {
  return Tensor::from_vector(floats(values), shape.get<Shape>(), dtype);
}

struct Tolerance {
  double atol, rtol, max_error_rate, max_error_count;
};

Tolerance tolerance(const json& t) {
  return {t.at("atol").get<double>(), t.at("rtol").get<double>(), t.value("max_error_rate", 0.0),
          t.value("max_error_count", 0.0)};
}

// Compares under the golden rule: at most max(count, rate * numel) elements not within
// atol + rtol * |expected|.
void check_close(const Tensor& actual, const json& expected_json, const Tolerance& tol,
                 const std::string& what) {
  std::vector<float> got = actual.to_vector<float>();
  std::vector<float> expected = floats(expected_json);
  REQUIRE(got.size() == expected.size());
  size_t bad = 0;
  std::ostringstream first;
  for (size_t i = 0; i < got.size(); ++i) {
    double e = expected[i], a = got[i];
    if (!(std::abs(a - e) <= tol.atol + tol.rtol * std::abs(e))) {
      if (bad++ < 3) first << " [" << i << "] " << a << " vs " << e;
    }
  }
  double allowed = std::max(tol.max_error_count, tol.max_error_rate * double(got.size()));
  INFO(what << ": " << bad << " of " << got.size() << " elements differ:" << first.str());
  CHECK(double(bad) <= allowed);
}

std::string case_name(size_t index, const json& c) {
  std::string name = str("#", index, " ", c.at("optimizer").get<std::string>(), " ",
                         c.at("dtype").get<std::string>(), " ", c.at("mode").get<std::string>(),
                         " ", c.at("options").dump());
  if (c.contains("groups") && !c.at("groups").is_null()) name += " groups";
  if (c.contains("probe")) name += str(" probe=", c.at("probe").get<std::string>());
  return name;
}

std::vector<optim::ParamGroup> groups_of(const json& c, const std::vector<Tensor>& params) {
  if (!c.contains("groups") || c.at("groups").is_null()) return {{params}};
  std::vector<optim::ParamGroup> groups;
  for (const json& g : c.at("groups")) {
    optim::ParamGroup group;
    for (const json& i : g.at("params")) group.params.push_back(params.at(i.get<size_t>()));
    if (g.contains("lr")) group.lr = g.at("lr").get<double>();
    if (g.contains("weight_decay")) group.weight_decay = g.at("weight_decay").get<double>();
    groups.push_back(std::move(group));
  }
  return groups;
}

void run_case(size_t index, const json& c, const Tolerance& tol) {
  // The decouple_lr cases warn by design; the warning is tested elsewhere.
  WarningHandler previous = set_warning_handler([](const std::string&) {});
  struct Restore {
    WarningHandler& previous;
    ~Restore() { set_warning_handler(previous); }
  } restore{previous};
  const std::string mode = c.at("mode").get<std::string>();
  const bool release = mode != "normal";
  const DType dtype = dtype_of(c.at("dtype").get<std::string>());
  const json& shapes = c.at("shapes");
  std::vector<Tensor> params;
  for (size_t i = 0; i < shapes.size(); ++i) {
    params.push_back(tensor(c.at("init").at(i), shapes.at(i), dtype).requires_grad_());
  }
  auto make = [&] {
    return testing::make_optimizer(c.at("optimizer").get<std::string>(), c.at("options"),
                                   groups_of(c, params), release);
  };
  std::unique_ptr<optim::Optimizer> opt = make();
  std::vector<double> initial_lrs;
  for (size_t g = 0; g < opt->num_param_groups(); ++g) initial_lrs.push_back(opt->lr(g));

  // Gradient release: real backward hooks step and free each gradient as it is complete.
  std::vector<RemovableHandle> hooks;
  if (release) {
    for (Tensor& p : params) {
      hooks.push_back(p.register_post_accumulate_grad_hook([&opt](Tensor& param) {
        opt->step(param);
        opt->zero_grad(param);
      }));
    }
  }
  const json& steps = c.at("steps");
  for (size_t t = 0; t < steps.size(); ++t) {
    const json& st = steps.at(t);
    for (size_t g = 0; g < initial_lrs.size(); ++g) {
      opt->set_lr(g, initial_lrs[g] * st.at("lr_scale").get<double>());
    }
    std::vector<Tensor> grads;
    for (size_t i = 0; i < params.size(); ++i) {
      grads.push_back(tensor(st.at("grads").at(i), shapes.at(i), dtype));
    }
    if (release) {
      opt->set_optimizer_accumulation(st.value("accumulate", false));
      // loss = sum_i sum(param_i * G_i), so that backward produces exactly the recorded gradients.
      Tensor loss;
      for (size_t i = 0; i < params.size(); ++i) {
        Tensor term = (params[i] * grads[i]).sum();
        loss = loss.defined() ? loss + term : term;
      }
      loss.backward();
      for (const Tensor& p : params) REQUIRE_FALSE(p.grad().defined());
      opt->step();  // harmless under gradient release: no parameter has a gradient
      opt->zero_grad();
    } else {
      for (size_t i = 0; i < params.size(); ++i) params[i].set_grad(grads[i]);
      opt->step();
      opt->zero_grad();
    }
    for (size_t i = 0; i < params.size(); ++i) {
      check_close(params[i], st.at("expected").at(i), tol, str("step ", t + 1, " parameter ", i));
    }
    if (c.contains("checkpoint_at") && c.at("checkpoint_at").is_number() &&
        c.at("checkpoint_at").get<size_t>() == t + 1) {
      auto path =
          std::filesystem::temp_directory_path() / str("optimi_golden_", index, ".safetensors");
      opt->save(path);
      opt = make();
      opt->load(path);
      std::filesystem::remove(path);
    }
  }
  for (RemovableHandle& h : hooks) h.remove();
}

void run_golden_cases(const std::string& optimizer) {
  const json& data = golden("optimizers.json");
  size_t count = 0;
  for (size_t i = 0; i < data.at("cases").size(); ++i) {
    const json& c = data.at("cases").at(i);
    if (c.at("optimizer") != optimizer) continue;
    ++count;
    DYNAMIC_SECTION(case_name(i, c)) {
      run_case(i, c, tolerance(data.at("tolerance").at(c.at("dtype").get<std::string>())));
    }
  }
  CHECK(count > 0);
}

}  // namespace

TEST_CASE("golden optimizers.json: SGD", "[optim][golden]") {
  run_golden_cases("SGD");
}
TEST_CASE("golden optimizers.json: Adam", "[optim][golden]") {
  run_golden_cases("Adam");
}
TEST_CASE("golden optimizers.json: AdamW", "[optim][golden]") {
  run_golden_cases("AdamW");
}
TEST_CASE("golden optimizers.json: Adan", "[optim][golden]") {
  run_golden_cases("Adan");
}
TEST_CASE("golden optimizers.json: Lion", "[optim][golden]") {
  run_golden_cases("Lion");
}
TEST_CASE("golden optimizers.json: RAdam", "[optim][golden]") {
  run_golden_cases("RAdam");
}
TEST_CASE("golden optimizers.json: Ranger", "[optim][golden]") {
  run_golden_cases("Ranger");
}
TEST_CASE("golden optimizers.json: StableAdamW", "[optim][golden]") {
  run_golden_cases("StableAdamW");
}

// The parameters after each of mlp.json's ten AdamW steps (lr 1e-2, weight_decay 1e-2), from its
// recorded gradients.
TEST_CASE("golden mlp.json: AdamW trajectory", "[optim][golden]") {
  const json& data = golden("mlp.json");
  for (const json& c : data.at("cases")) {
    std::vector<std::string> names;
    std::vector<Tensor> params;
    for (const auto& [name, shape] : c.at("shapes").items()) {
      names.push_back(name);
      params.push_back(tensor(c.at("init").at(name), shape, DType::Float32));
    }
    optim::AdamW opt(params, {.lr = 1e-2, .weight_decay = 1e-2});
    const Tolerance tol{1e-6, 1e-5, 0.0, 0.0};
    const json& steps = c.at("steps");
    for (size_t t = 0; t < steps.size(); ++t) {
      for (size_t i = 0; i < names.size(); ++i) {
        params[i].set_grad(tensor(steps.at(t).at("grads").at(names[i]), c.at("shapes").at(names[i]),
                                  DType::Float32));
      }
      opt.step();
      opt.zero_grad();
      for (size_t i = 0; i < names.size(); ++i) {
        check_close(params[i], steps.at(t).at("after").at(names[i]), tol,
                    str("step ", t + 1, " ", names[i]));
      }
    }
  }
}
