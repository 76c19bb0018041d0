#pragma once

// optimi::nn: modules, layers, functional operations and safetensors I/O.
#include "optimi/nn/functional.hpp"
#include "optimi/nn/layers.hpp"
#include "optimi/nn/module.hpp"
#include "optimi/nn/safetensors.hpp"
