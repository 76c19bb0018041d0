#pragma once

// Element-wise math is written once and compiled for host and device: under nvcc these
// functions become __host__ __device__, everywhere else inline functions. Always inlined on both:
// a call left in a CPU loop (GCC keeps larger ones such as fast_tanh out of line) stops it from
// being vectorised.
#if defined(__CUDACC__)
#define OPTIMI_HD __host__ __device__ __forceinline__
#else
#define OPTIMI_HD inline __attribute__((always_inline))
#endif
