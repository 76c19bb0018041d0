#include "optimi/autograd.hpp"

#include <atomic>
#include <cmath>
#include <functional>
#include <queue>
#include <stdexcept>
#include <unordered_map>

#include "optimi/ops.hpp"

namespace optimi {
namespace {
thread_local bool grad_enabled = true;
std::atomic<bool> anomaly_mode{false};

// Throws when `t` holds a NaN or an infinity.
void check_finite(const Tensor& t, const char* op, const char* phase) {
  if (!t.defined() || !t.is_floating_point() || t.numel() == 0) return;
  double s = t.detach().abs().sum().item();
  if (std::isfinite(s)) return;
  throw std::runtime_error(std::string("anomaly detected: ") + phase + " of " + op + " produced " +
                           (std::isnan(s) ? "NaN" : "Inf") + " in a tensor of shape " +
                           shape_str(t.shape()));
}
std::atomic<uint64_t> next_sequence_nr{0};
}  // namespace

NoGradGuard::NoGradGuard() : previous_(grad_enabled) {
  grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  grad_enabled = previous_;
}
bool grad_mode_enabled() {
  return grad_enabled;
}
void set_detect_anomaly(bool on) {
  anomaly_mode = on;
}
bool detect_anomaly_enabled() {
  return anomaly_mode;
}

namespace autograd {
namespace {

struct InputMeta {
  Shape shape;
  DType dtype;
};

// The backward of one recorded op.
struct FunctionNode final : Node {
  FunctionNode(const char* op, BackwardFn fn, std::vector<InputMeta> inputs)
      : op_(op), fn_(std::move(fn)), inputs_(std::move(inputs)) {}

  std::vector<Tensor> apply(const Tensor& grad_output) override {
    if (!fn_)
      throw std::runtime_error(std::string("backward of ") + op_ +
                               " ran twice: its saved tensors were already released");
    std::vector<bool> needs(next_edges.size());
    for (size_t i = 0; i < needs.size(); ++i) needs[i] = next_edges[i].node != nullptr;
    std::vector<Tensor> grads = fn_(grad_output, needs);
    if (grads.size() != inputs_.size())
      throw std::logic_error(std::string("backward of ") + op_ +
                             " returned the wrong number of gradients");
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!needs[i] || !grads[i].defined()) continue;
      if (grads[i].shape() != inputs_[i].shape)
        throw std::logic_error(std::string("backward of ") + op_ +
                               " produced a gradient of shape " + shape_str(grads[i].shape()) +
                               " for an input of shape " + shape_str(inputs_[i].shape));
      if (grads[i].dtype() != inputs_[i].dtype) grads[i] = grads[i].to(inputs_[i].dtype);
      if (anomaly_mode) check_finite(grads[i], op_, "backward");
    }
    return grads;
  }
  std::string name() const override { return op_; }
  void release_saved() override { fn_ = nullptr; }

 private:
  const char* op_;
  BackwardFn fn_;
  std::vector<InputMeta> inputs_;
};

// The backward of a recorded op of one input that adds into that input's pending gradient.
struct AccumulatingNode final : Node {
  AccumulatingNode(const char* op, AccumulateFn fn) : op_(op), fn_(std::move(fn)) {}

  std::vector<Tensor> apply(const Tensor& grad_output) override {
    Tensor slot;
    accumulate(grad_output, slot);
    return {slot};
  }
  bool accumulates_in_place() const override { return true; }
  void accumulate(const Tensor& grad_output, Tensor& slot) override {
    fn_(grad_output, slot);
    if (anomaly_mode) check_finite(slot, op_, "backward");
  }
  std::string name() const override { return op_; }

 private:
  const char* op_;
  AccumulateFn fn_;
};

// Sums a leaf's gradient contributions into .grad, then runs its post-accumulate-grad hooks.
struct AccumulateGrad final : Node {
  explicit AccumulateGrad(std::shared_ptr<TensorImpl> leaf) : leaf_(std::move(leaf)) {}

  std::vector<Tensor> apply(const Tensor& incoming) override {
    Tensor leaf(leaf_);
    Tensor g = incoming.dtype() == leaf_->dtype ? incoming : incoming.to(leaf_->dtype);
    if (leaf_->grad) {
      leaf.set_grad(Tensor(leaf_->grad) + g);
    } else {
      // Backward may hand the same tensor to several inputs (add, views): keep a private copy
      // unless nobody else can see this one.
      bool exclusive =
          g.impl_ptr().use_count() <= 2 && g.storage().use_count() == 1 && g.is_contiguous();
      leaf.set_grad(exclusive ? g : g.clone());
    }
    // Copy the hook list: a hook may remove hooks while we iterate.
    auto hooks = leaf_->post_accumulate_grad_hooks;
    for (auto& [id, hook] : hooks) hook(leaf);
    return {};
  }
  std::string name() const override { return "AccumulateGrad"; }
  bool is_accumulator() const override { return true; }

 private:
  std::shared_ptr<TensorImpl> leaf_;
};

std::shared_ptr<Node> grad_edge(const Tensor& t) {
  TensorImpl* impl = t.impl();
  if (!impl->requires_grad) return nullptr;
  if (impl->grad_fn) return impl->grad_fn;
  std::shared_ptr<Node> acc = impl->grad_accumulator.lock();
  if (!acc) {
    acc = std::make_shared<AccumulateGrad>(t.impl_ptr());
    acc->sequence_nr = UINT64_MAX;  // run as soon as ready: hooks must not wait for the rest
    impl->grad_accumulator = acc;
  }
  return acc;
}

}  // namespace

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

void record(const char* op, const std::vector<Tensor>& inputs, Tensor& output,
            BackwardFn backward) {
  if (!grad_enabled || !any_requires_grad(inputs)) return;
  if (anomaly_mode) {
    NoGradGuard no_grad;
    check_finite(output, op, "forward");
  }
  std::vector<InputMeta> meta;
  meta.reserve(inputs.size());
  for (const Tensor& t : inputs)
    meta.push_back(t.defined() ? InputMeta{t.shape(), t.dtype()} : InputMeta{{}, DType::Float32});
  auto node = std::make_shared<FunctionNode>(op, std::move(backward), std::move(meta));
  node->sequence_nr = next_sequence_nr++;
  for (const Tensor& t : inputs) node->next_edges.push_back({t.defined() ? grad_edge(t) : nullptr});
  TensorImpl* out = output.impl();
  out->grad_fn = std::move(node);
  out->requires_grad = true;
}

void record_accumulating(const char* op, const Tensor& input, Tensor& output,
                         AccumulateFn accumulate) {
  if (!grad_enabled || !input.defined() || !input.requires_grad()) return;
  if (anomaly_mode) {
    NoGradGuard no_grad;
    check_finite(output, op, "forward");
  }
  auto node = std::make_shared<AccumulatingNode>(op, std::move(accumulate));
  node->sequence_nr = next_sequence_nr++;
  node->next_edges.push_back({grad_edge(input)});
  TensorImpl* out = output.impl();
  out->grad_fn = std::move(node);
  out->requires_grad = true;
}

void run_backward(const Tensor& root, const Tensor& seed) {
  std::shared_ptr<Node> root_node = grad_edge(root);
  if (!root_node) return;
  NoGradGuard no_grad;

  // Count, for every node, how many edges lead into it: it runs once they have all delivered.
  std::unordered_map<Node*, int> dependencies;
  std::vector<Node*> stack{root_node.get()};
  dependencies[root_node.get()] = 0;
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    for (const Edge& e : n->next_edges) {
      if (!e.node) continue;
      auto [it, inserted] = dependencies.try_emplace(e.node.get(), 0);
      ++it->second;
      if (inserted) stack.push_back(e.node.get());
    }
  }

  // Ready nodes by priority: accumulators first (so hooks fire as early as possible), then the
  // most recently recorded op, which is the reverse of the forward order.
  auto later = [](const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) {
    return a->sequence_nr < b->sequence_nr;
  };
  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, decltype(later)>
      ready(later);
  std::unordered_map<Node*, Tensor> pending;  // summed incoming gradient per node
  pending[root_node.get()] = seed;
  ready.push(root_node);

  // Called once per edge into `next` after its producer ran. A node none of whose inputs
  // delivered a gradient never runs, but the nodes behind it still learn that nothing is coming.
  std::function<void(const std::shared_ptr<Node>&)> edge_done =
      [&](const std::shared_ptr<Node>& next) {
        if (--dependencies[next.get()] > 0) return;
        auto it = pending.find(next.get());
        if (it != pending.end() && it->second.defined()) {
          ready.push(next);
          return;
        }
        pending.erase(next.get());
        next->release_saved();
        for (const Edge& e : next->next_edges)
          if (e.node) edge_done(e.node);
      };

  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    Tensor grad = std::move(pending[node.get()]);
    pending.erase(node.get());
    if (node->accumulates_in_place()) {
      const std::shared_ptr<Node>& next = node->next_edges[0].node;
      Tensor& slot = pending[next.get()];
      // Add in place only into a gradient nobody else holds or views (backward may hand one
      // tensor to several inputs).
      if (slot.defined() && (slot.impl_ptr().use_count() != 1 || slot.storage().use_count() != 1))
        slot = slot.clone();
      node->accumulate(grad, slot);
      grad = Tensor();
      node->release_saved();
      edge_done(next);
      continue;
    }
    std::vector<Tensor> grads = node->apply(grad);
    grad = Tensor();
    node->release_saved();
    for (size_t i = 0; i < grads.size(); ++i) {
      const std::shared_ptr<Node>& next = node->next_edges[i].node;
      if (!next) continue;
      if (grads[i].defined()) {
        Tensor& slot = pending[next.get()];
        slot = slot.defined() ? slot + grads[i] : std::move(grads[i]);
      }
      grads[i] = Tensor();
      edge_done(next);
    }
  }
}

}  // namespace autograd
}  // namespace optimi
