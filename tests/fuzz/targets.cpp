#include "targets.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <functional>
#include <memory>
#include <optimi/optimi.hpp>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "checkpoint.hpp"
#include "cli.hpp"
#include "data.hpp"
#include "model.hpp"
#include "setup.hpp"
#include "train.hpp"

namespace optimi_fuzz {
namespace {

namespace fs = std::filesystem;
using optimi::DType;
using optimi::Tensor;
namespace optim = optimi::optim;

// A private directory for the files a process loads, removed at exit.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "optimi_fuzz_XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::system_error(errno, std::generic_category());
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path_, ignored);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

const fs::path& scratch() {
  static ScratchDir dir;
  return dir.path();
}

void write_file(const fs::path& path, const uint8_t* data, size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), path.string());
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      ::close(fd);
      throw std::system_error(errno, std::generic_category(), path.string());
    }
    data += n;
    size -= size_t(n);
  }
  ::close(fd);
}

// The contract under test: loaders reject bad files only with these two exception types.
bool loads(const std::function<void()>& load) {
  try {
    load();
    return true;
  } catch (const std::runtime_error&) {
    return false;
  } catch (const std::invalid_argument&) {
    return false;
  }
}

// Gradients and values fixed per parameter shape, so every input starts from the same state.
Tensor fixed_values(const Tensor& like, double scale) {
  std::vector<float> v(size_t(like.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(scale * (double(i % 7) - 3.0));
  return Tensor::from_vector(v, like.shape(), like.dtype());
}

void set_fixed_grads(const std::vector<Tensor>& params) {
  for (Tensor p : params) p.set_grad(fixed_values(p, 0.01));
}

// ---- safetensors ----

bool run_safetensors(const uint8_t* data, size_t size) {
  const fs::path file = scratch() / "input.safetensors";
  write_file(file, data, size);
  return loads([&] {
    optimi::nn::SafetensorsFile loaded = optimi::nn::load_safetensors(file);
    // Reading every element checks that the tensors own the memory their shapes claim.
    for (const auto& [name, t] : loaded.tensors) {
      if (t.to_vector<double>().size() != size_t(t.numel())) std::abort();
    }
  });
}

void seeds_safetensors(const fs::path& dir) {
  using optimi::nn::save_safetensors;
  save_safetensors(dir / "all_dtypes.safetensors",
                   {{"f64", Tensor::from_vector(std::vector<double>{1.5, -2.0}, {2})},
                    {"f32", Tensor::from_vector({1.f, 2.f, 3.f, 4.f, 5.f, 6.f}, {2, 3})},
                    {"f16", Tensor::from_vector({0.5f, -1.f, 65504.f}, {3}, DType::Float16)},
                    {"bf16", Tensor::from_vector({0.25f, 3.f}, {1, 2}, DType::BFloat16)},
                    {"i64", Tensor::from_vector(std::vector<int64_t>{7, -8, 9}, {3})},
                    {"bool", Tensor::ones({2, 2}, DType::Bool)}},
                   {{"format", "pt"}, {"note", "seed"}});
  save_safetensors(dir / "scalar_and_empty.safetensors",
                   {{"scalar", Tensor::full({}, 3.0)}, {"empty", Tensor::zeros({0, 4})}});
  save_safetensors(dir / "no_tensors.safetensors", {}, {{"only", "metadata"}});
}

// ---- optimizer load ----

// Eight optimizers over the same two parameter groups: float32 weights and bfloat16 biases
// (Kahan summation on), so a file of any optimizer type reaches that type's own load.
struct OptimizerFixture {
  Tensor weight = Tensor::zeros({2, 3});
  Tensor bias = Tensor::zeros({4}, DType::BFloat16);
  std::vector<std::unique_ptr<optim::Optimizer>> optimizers;

  OptimizerFixture() {
    weight.requires_grad_();
    bias.requires_grad_();
    auto groups = [&] {
      return std::vector<optim::ParamGroup>{{.params = {weight}},
                                            {.params = {bias}, .weight_decay = 0.0}};
    };
    optimizers.push_back(
        std::make_unique<optim::SGD>(groups(), optim::SGDOptions{.lr = 0.1, .momentum = 0.9}));
    optimizers.push_back(std::make_unique<optim::Adam>(groups(), optim::AdamOptions{.lr = 1e-3}));
    optimizers.push_back(std::make_unique<optim::AdamW>(groups(), optim::AdamWOptions{.lr = 1e-3}));
    optimizers.push_back(std::make_unique<optim::Adan>(groups(), optim::AdanOptions{.lr = 1e-3}));
    optimizers.push_back(std::make_unique<optim::Lion>(groups(), optim::LionOptions{.lr = 1e-4}));
    optimizers.push_back(std::make_unique<optim::RAdam>(groups(), optim::RAdamOptions{.lr = 1e-3}));
    optimizers.push_back(
        std::make_unique<optim::Ranger>(groups(), optim::RangerOptions{.lr = 1e-3}));
    optimizers.push_back(
        std::make_unique<optim::StableAdamW>(groups(), optim::StableAdamWOptions{.lr = 1e-3}));
  }

  void reset_params() {
    weight.copy_(fixed_values(weight, 0.1));
    bias.copy_(fixed_values(bias, 0.1));
  }

  // The optimizer a file names, or AdamW (which must then reject it).
  optim::Optimizer& for_file(const fs::path& file) {
    std::string name;
    try {
      const auto meta = optimi::nn::load_safetensors(file).metadata;
      if (auto it = meta.find("optimizer"); it != meta.end()) name = it->second;
    } catch (const std::runtime_error&) {
      // Optimizer::load must reject it too; any optimizer will do.
    }
    for (auto& o : optimizers) {
      if (o->name() == name) return *o;
    }
    return *optimizers[2];
  }
};

OptimizerFixture& optimizer_fixture() {
  static OptimizerFixture fixture;
  return fixture;
}

bool run_optimizer_load(const uint8_t* data, size_t size) {
  OptimizerFixture& f = optimizer_fixture();
  const fs::path file = scratch() / "optimizer.safetensors";
  write_file(file, data, size);
  optim::Optimizer& optimizer = f.for_file(file);
  return loads([&] {
    optimizer.load(file);
    // A loaded state must also be usable: one step with whatever hyperparameters it carried.
    f.reset_params();
    set_fixed_grads({f.weight, f.bias});
    optimizer.step();
  });
}

void seeds_optimizer_load(const fs::path& dir) {
  OptimizerFixture& f = optimizer_fixture();
  for (auto& o : f.optimizers) {
    f.reset_params();
    for (int i = 0; i < 2; ++i) {
      set_fixed_grads({f.weight, f.bias});
      o->step();
    }
    std::string name(o->name());
    for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
    o->save(dir / (name + ".safetensors"));
  }
}

// ---- the MiniLM sample's checkpoint ----

// Writes a checkpoint of a tiny model after two steps to `dir`: the model file, which it
// returns, and beside it the optimizer file that the model file names.
fs::path write_minilm_checkpoint(const fs::path& dir) {
  minilm::Config c;
  c.d_model = 8;
  c.layers = 1;
  c.heads = 2;
  c.seq = 8;
  optimi::manual_seed(0);
  minilm::MiniLM model(minilm::architecture(c));
  auto optimizer = minilm::make_training_optimizer(c, model);
  for (int i = 0; i < 2; ++i) {
    set_fixed_grads(model.parameters());
    optimizer->step();
  }
  const fs::path path = dir / "ckpt.safetensors";
  minilm::RunState run;
  run.step = 2;
  run.rng_state = 1;
  run.settings = minilm::run_settings(c);
  minilm::CheckpointWriter(path).write(model, *optimizer, run);
  return path;
}

const fs::path& minilm_input() {
  static const fs::path path = [] {
    const fs::path dir = scratch() / "minilm";
    fs::create_directories(dir);
    return write_minilm_checkpoint(dir);
  }();
  return path;
}

// Keeps a fuzzed architecture within the fuzzer's RSS limit (tests/fuzz.sh: 2 GiB).
constexpr int64_t kMinilmMemoryCap = int64_t(512) << 20;

// Exactly what `minilm --resume FILE` does before its first step (samples/minilm/main.cpp): the
// configuration from the file, checked; the model with its weights; and the Trainer, which loads
// the optimizer state, the scheduler's step and the RNG state.
void resume_minilm(const fs::path& file) {
  const std::optional<minilm::Checkpoint> ck = minilm::read_checkpoint(file);
  const minilm::Config c =
      minilm::prepare_config({{"resume", file.string()}}, ck, kMinilmMemoryCap);
  auto model = minilm::build_model(c, ck, optimi::Device::cpu());
  const minilm::Dataset no_data;  // only read once training starts
  minilm::Trainer trainer(c, *model, no_data, optimi::Device::cpu(), &*ck);
}

bool run_minilm_checkpoint(const uint8_t* data, size_t size) {
  const fs::path& file = minilm_input();
  write_file(file, data, size);
  return loads([&] { resume_minilm(file); });
}

void seeds_minilm_checkpoint(const fs::path& dir) {
  // The optimizer file is the fuzzer's fixture, not an input: only the model file is a seed.
  ScratchDir work;
  fs::copy_file(write_minilm_checkpoint(work.path()), dir / "resumable.safetensors",
                fs::copy_options::overwrite_existing);
  // Weights-only files, as from the PyTorch reference: float32, bfloat16, and with rotary buffers.
  struct Variant {
    const char* file;
    DType dtype;
    bool rope;
  };
  for (const Variant& v : {Variant{"weights.safetensors", DType::Float32, false},
                           Variant{"weights_bf16.safetensors", DType::BFloat16, false},
                           Variant{"weights_rope.safetensors", DType::Float32, true}}) {
    optimi::manual_seed(0);
    const minilm::ModelConfig arch{
        .d_model = 8, .layers = 1, .heads = 2, .max_seq = 8, .rope = v.rope};
    minilm::MiniLM model(arch);
    model.to(v.dtype);
    optimi::nn::save_state_dict(model, dir / v.file, arch.to_metadata());
  }
}

constexpr std::array<Target, 3> kTargets = {{
    {"safetensors", run_safetensors, seeds_safetensors},
    {"optimizer_load", run_optimizer_load, seeds_optimizer_load},
    {"minilm_checkpoint", run_minilm_checkpoint, seeds_minilm_checkpoint},
}};

}  // namespace

const Target* find_target(std::string_view name) {
  for (const Target& t : kTargets) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const Target* all_targets(size_t& count) {
  count = kTargets.size();
  return kTargets.data();
}

}  // namespace optimi_fuzz
