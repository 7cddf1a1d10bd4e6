#pragma once
// <cuda.h> in an emulated build (tests/implementations/cuda/emulation/runtime.h): this folder comes
// before the toolkit on the include path of the targets that run CUDA code on the CPU.
#include "tests/implementations/cuda/emulation/runtime.h"
