# CUDA backend selection. AUTO turns it on when nvcc can be found; OFF and machines without
# nvcc build CPU-only. Device code never reaches public headers, so consumers need no nvcc.
if(OPTIMI_CUDA STREQUAL "AUTO")
  include(CheckLanguage)
  check_language(CUDA)
  # ON/OFF rather than the compiler's path, which optimiConfig.cmake.in tests with if().
  if(CMAKE_CUDA_COMPILER)
    set(OPTIMI_CUDA_ENABLED ON)
  else()
    set(OPTIMI_CUDA_ENABLED OFF)
  endif()
elseif(OPTIMI_CUDA)
  set(OPTIMI_CUDA_ENABLED ON)
else()
  set(OPTIMI_CUDA_ENABLED OFF)
endif()

if(OPTIMI_CUDA_ENABLED)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80-real 90)
  endif()
  if(OPTIMI_CCACHE)
    set(CMAKE_CUDA_COMPILER_LAUNCHER ${OPTIMI_CCACHE})
  endif()
  enable_language(CUDA)
  find_package(CUDAToolkit REQUIRED)
  if(NOT DEFINED CMAKE_CUDA20_STANDARD_COMPILE_OPTION)
    # CMake before 3.26 does not know nvcc's C++20 flag (nvcc has it since CUDA 12.0).
    set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
    set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
  endif()
  message(STATUS "optimi: CUDA backend on (${CMAKE_CUDA_COMPILER}, archs ${CMAKE_CUDA_ARCHITECTURES})")
else()
  message(STATUS "optimi: CUDA backend off")
endif()

function(optimi_add_cuda_backend target)
  if(NOT OPTIMI_CUDA_ENABLED)
    return()
  endif()
  file(GLOB_RECURSE cuda_sources CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/kernels/cuda/*.cu)
  target_sources(${target} PRIVATE ${cuda_sources})
  target_compile_definitions(${target} PRIVATE OPTIMI_WITH_CUDA=1)
  target_link_libraries(${target} PRIVATE CUDA::cudart CUDA::cublas)
  set_target_properties(${target} PROPERTIES CUDA_STANDARD 20 CUDA_SEPARABLE_COMPILATION OFF)
  # Warnings are errors in device code and in nvcc's host pass too.
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CUDA>:--Werror=all-warnings -Xcompiler=-Wall,-Wextra,-Werror,-Wno-unused-parameter>)
  # The optimizer kernels round every float32 operation on its own, as the CPU loops do
  # (kernels/cpu/optimizers.cpp): no multiply-add contraction, so results match bit for bit.
  set_source_files_properties(${PROJECT_SOURCE_DIR}/kernels/cuda/optimizers.cu
    PROPERTIES COMPILE_OPTIONS "--fmad=false")
endfunction()
