#pragma once

// optimi::optim: the eight optimizers, their base and the learning-rate schedulers.
#include "optimi/optim/adam.hpp"
#include "optimi/optim/adamw.hpp"
#include "optimi/optim/adan.hpp"
#include "optimi/optim/lion.hpp"
#include "optimi/optim/optimizer.hpp"
#include "optimi/optim/radam.hpp"
#include "optimi/optim/ranger.hpp"
#include "optimi/optim/scheduler.hpp"
#include "optimi/optim/sgd.hpp"
#include "optimi/optim/stableadamw.hpp"
