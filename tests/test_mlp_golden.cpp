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

#include "optimi/nn.hpp"

using namespace optimi;
using namespace optimi::nn;
using nlohmann::json;

namespace {

// optimi's test MLP: LayerNorm -> Linear (no bias) -> Mish -> Linear (no bias) to one output.
struct Mlp : Module {
  Mlp(int64_t d, int64_t h) {
    norm = register_module("norm", std::make_shared<LayerNorm>(d));
    fc1 = register_module("fc1", std::make_shared<Linear>(d, h, false));
    act = register_module("act", std::make_shared<Mish>());
    fc2 = register_module("fc2", std::make_shared<Linear>(h, 1, false));
  }
  Tensor forward(const Tensor& x) const {
    return fc2->forward(act->forward(fc1->forward(norm->forward(x))));
  }

  std::shared_ptr<LayerNorm> norm;
  std::shared_ptr<Linear> fc1;
  std::shared_ptr<Mish> act;
  std::shared_ptr<Linear> fc2;
};

json load_golden(const std::string& name) {
  const std::filesystem::path path = std::filesystem::path(OPTIMI_SHARED_DIR) / "golden" / name;
  std::ifstream in(path);
  if (!in) FAIL("golden file " << path << " is missing: the golden tests need ../shared/golden/");
  return json::parse(in);
}

// The golden values are float32 numbers printed exactly; read them as float32.
std::vector<float> floats(const json& values) {
  std::vector<float> out;
  for (const json& v : values) out.push_back(v.get<float>());
  return out;
}

std::map<std::string, Tensor> tensors(const json& values, const json& shapes) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, v] : values.items()) {
    out.emplace(name, Tensor::from_vector(floats(v), shapes.at(name).get<Shape>()));
  }
  return out;
}

// atol 1e-5, rtol 1e-4; reports the first element out of tolerance.
void check_close(const std::string& what, const std::vector<float>& actual,
                 const std::vector<float>& expected) {
  REQUIRE(actual.size() == expected.size());
  size_t bad = 0;
  std::ostringstream first;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (!(std::abs(actual[i] - expected[i]) <= 1e-5 + 1e-4 * std::abs(expected[i]))) {
      if (bad++ == 0) first << "element " << i << ": " << actual[i] << " vs " << expected[i];
    }
  }
  INFO(what << ": " << bad << " of " << actual.size() << " elements differ; " << first.str());
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("MLP loss and gradients match PyTorch", "[golden][nn]") {
  const json golden = load_golden("mlp.json");
  for (const json& c : golden.at("cases")) {
    REQUIRE(c.at("dtype") == "float32");
    const int64_t d = c.at("d").get<int64_t>();
    const int64_t batch = c.at("batch").get<int64_t>();
    const json& shapes = c.at("shapes");
    Mlp model(d, c.at("h").get<int64_t>());
    model.load_state_dict(tensors(c.at("init"), shapes));

    int step = 0;
    for (const json& s : c.at("steps")) {
      INFO("step " << step++);
      const Tensor x = Tensor::from_vector(floats(s.at("x")), {batch, d});
      const Tensor y = Tensor::from_vector(floats(s.at("y")), {batch, 1});
      model.zero_grad();
      const Tensor loss = functional::mse_loss(model.forward(x), y);
      loss.backward();
      check_close("loss", {float(loss.item())}, {s.at("loss").get<float>()});
      const auto params = model.named_parameters();
      REQUIRE(params.size() == s.at("grads").size());
      for (const auto& [name, p] : params) {
        REQUIRE(p.grad().defined());
        check_close("grad of " + name, p.grad().to_vector<float>(), floats(s.at("grads").at(name)));
      }
      // Start the next step from the reference parameters so errors cannot compound.
      model.load_state_dict(tensors(s.at("after"), shapes));
    }
  }
}
