// Translation unit that owns the LibTorch precompiled header (see GaccTorch.cmake).
