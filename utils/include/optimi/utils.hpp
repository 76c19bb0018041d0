#pragma once

// optimi's four utilities.
#include "optimi/utils/gradient_release.hpp"
#include "optimi/utils/low_precision.hpp"
#include "optimi/utils/param_groups.hpp"
