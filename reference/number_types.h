#pragma once
/// The number types the oracle is instantiated with. The oracle's code is written once, templated
/// on T, and read four ways:
///   HighPrecision  (cpp_bin_float_50) the truth every verdict is judged against;
///   double         a fast oracle, and the twin of LibTorch float64 in tests;
///   float          an fp32 re-enactment, used by tests to check that the bounds really bound;
///   Bounded        the value with a first-order bound on the rounding error of an
///                  implementation (see Note [tolerance] in reference/bounded.h).

#include <boost/multiprecision/cpp_bin_float.hpp>

namespace gacc::reference {

using HighPrecision = boost::multiprecision::cpp_bin_float_50;

inline double to_double(double x) { return x; }
inline double to_double(float x) { return static_cast<double>(x); }
inline double to_double(const HighPrecision& x) { return x.convert_to<double>(); }

/// Makes T from a double exactly (every double is exact in each of the types above but float,
/// where callers only pass fp32-representable values).
template <class T>
T from_double(double x) {
  return T(x);
}

}  // namespace gacc::reference
