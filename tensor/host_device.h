// HOST_DEVICE: one definition of per-element math, compiled for both the CPU loops and the CUDA
// kernels. Under nvcc it expands to __host__ __device__ __forceinline__, elsewhere to inline, so the
// CPU tests exercise exactly the arithmetic the GPU runs (the way detectron2's
// box_iou_rotated_utils.h shares its math).
#pragma once
#if defined(__CUDACC__)
#define HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HOST_DEVICE inline
#endif
