#pragma once

// The whole public API: core, nn, optim and utils.
#include "optimi/autograd.hpp"
#include "optimi/cuda.hpp"
#include "optimi/device.hpp"
#include "optimi/dtype.hpp"
#include "optimi/memory.hpp"
#include "optimi/nn.hpp"
#include "optimi/ops.hpp"
#include "optimi/optim.hpp"
#include "optimi/random.hpp"
#include "optimi/tensor.hpp"
#include "optimi/utils.hpp"
#include "optimi/warning.hpp"
