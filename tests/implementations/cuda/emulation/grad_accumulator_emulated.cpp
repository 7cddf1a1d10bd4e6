// grad_accumulator.cu — the GPU accumulator's host code and its kernels — compiled by the host
// compiler against the CUDA emulation (include/ comes first on this target's include path), for the
// emulated build of the GPU tests. Nothing here but the .cu itself.
#include "implementations/cuda/grad_accumulator.cu"
