// Trains one AdamW step on a tiny model through the public header only.
#include <cstdio>
#include <optimi/optimi.hpp>

int main() {
  using namespace optimi;
  manual_seed(0);
  nn::Linear model(4, 1);
  auto groups = utils::param_groups_weight_decay(model, 1e-2);
  optim::AdamW opt(groups, {.lr = 1e-2});
  Tensor x = Tensor::randn({8, 4});
  Tensor loss = nn::functional::mse_loss(model.forward(x), Tensor::zeros({8, 1}));
  loss.backward();
  opt.step();
  Tensor after = nn::functional::mse_loss(model.forward(x), Tensor::zeros({8, 1}));
  std::printf("loss %.6f -> %.6f\n", loss.item(), after.item());
  return after.item() < loss.item() ? 0 : 1;
}
