#pragma once

// Element-wise math is written once and compiled for host and device: under nvcc these
// functions become __host__ __device__, everywhere else they are plain inline functions.
#if defined(__CUDACC__)
#define OPTIMI_HD __host__ __device__ __forceinline__
#else
#define OPTIMI_HD inline
#endif
