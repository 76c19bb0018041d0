#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "optimi/tensor.hpp"

namespace optimi {

// RAII: nothing is recorded while alive.
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};
bool grad_mode_enabled();

// Anomaly detection (like torch.autograd.detect_anomaly): while on, every recorded op checks its
// output and every backward node its gradients, and the first NaN or Inf throws
// std::runtime_error naming the op and whether forward or backward produced it. Costs a pass over
// every tensor, so it is off by default.
void set_detect_anomaly(bool on);
bool detect_anomaly_enabled();
class DetectAnomalyGuard {
 public:
  DetectAnomalyGuard() : previous_(detect_anomaly_enabled()) { set_detect_anomaly(true); }
  ~DetectAnomalyGuard() { set_detect_anomaly(previous_); }
  DetectAnomalyGuard(const DetectAnomalyGuard&) = delete;
  DetectAnomalyGuard& operator=(const DetectAnomalyGuard&) = delete;

 private:
  bool previous_;
};

namespace autograd {

struct Edge {
  std::shared_ptr<Node> node;  // null when the input needs no gradient
};

// A node of the backward graph. Every node has one incoming gradient (the gradient of the one
// tensor it produced) and one outgoing edge per input of the forward op.
struct Node {
  virtual ~Node() = default;
  virtual std::vector<Tensor> apply(const Tensor& grad_output) = 0;
  virtual std::string name() const = 0;
  // Drops saved activations once backward has used them.
  virtual void release_saved() {}
  virtual bool is_accumulator() const { return false; }
  // Nodes of one input may add their input's gradient into the gradient already pending for it
  // (`slot`, undefined when none is, private to the engine) instead of returning a whole tensor
  // to be summed: a view of part of its input then touches only that part.
  virtual bool accumulates_in_place() const { return false; }
  virtual void accumulate(const Tensor& /*grad_output*/, Tensor& /*slot*/) {}

  std::vector<Edge> next_edges;
  uint64_t sequence_nr = 0;
};

// The gradient of an op with respect to its inputs, given the gradient of its output. `needs[i]`
// says whether input i wants one; entries for the others may be left undefined.
using BackwardFn =
    std::function<std::vector<Tensor>(const Tensor& grad_output, const std::vector<bool>& needs)>;

// Attaches the backward of an op to `output` when grad mode is on and some input requires grad.
// Returned gradients are cast to each input's dtype. Capture only what backward needs: captured
// tensors are released as soon as the node has run.
void record(const char* op, const std::vector<Tensor>& inputs, Tensor& output, BackwardFn backward);

// The same for an op of one input whose backward adds into that input's pending gradient (see
// Node::accumulate); `slot` is undefined for the first contribution.
using AccumulateFn = std::function<void(const Tensor& grad_output, Tensor& slot)>;
void record_accumulating(const char* op, const Tensor& input, Tensor& output,
                         AccumulateFn accumulate);
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Runs backward from `root` seeded with `grad`.
void run_backward(const Tensor& root, const Tensor& grad);

}  // namespace autograd
}  // namespace optimi
