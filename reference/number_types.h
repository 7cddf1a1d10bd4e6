#pragma once
/// The number types the oracle is instantiated with. The oracle's code is written once, templated
/// on T, and read four ways:
///   HighPrecision  (cpp_bin_float_50) the truth every verdict is judged against;
///   double         a fast oracle, and the twin of LibTorch float64 in tests;
///   float          an fp32 re-enactment, used by tests to check that the bounds really bound;
///   Bounded        the value with a first-order bound on the rounding error of an
///                  implementation (see Note [tolerance] in reference/bounded.h);
///   Stochastic     one draw of an implementation's rounding errors (stochastic rounding; see
///                  Note [probabilistic tolerance] in reference/stochastic.h).
/// The elementary functions are overloaded here for each, so that templated code calls them
/// unqualified (exp(x), erf(x), ...) and gets the right one.

#include <algorithm>
#include <cmath>

#include <boost/math/special_functions/erf.hpp>
#include <boost/multiprecision/cpp_bin_float.hpp>

#include "reference/bounded.h"
#include "reference/stochastic.h"

namespace gacc::reference {

using HighPrecision = boost::multiprecision::cpp_bin_float_50;

inline double to_double(double x) { return x; }
inline double to_double(float x) { return static_cast<double>(x); }
inline double to_double(const HighPrecision& x) { return x.convert_to<double>(); }

#define GACC_PLAIN_MATH(T)                                            \
  inline T exp(T x) { return std::exp(x); }                           \
  inline T log(T x) { return std::log(x); }                           \
  inline T sqrt(T x) { return std::sqrt(x); }                         \
  inline T tanh(T x) { return std::tanh(x); }                         \
  inline T erf(T x) { return std::erf(x); }                           \
  inline T cos(T x) { return std::cos(x); }                           \
  inline T abs(T x) { return std::fabs(x); }                          \
  inline T max(T a, T b) { return std::max(a, b); }                   \
  inline T min(T a, T b) { return std::min(a, b); }
GACC_PLAIN_MATH(double)
GACC_PLAIN_MATH(float)
#undef GACC_PLAIN_MATH

inline HighPrecision exp(const HighPrecision& x) { return boost::multiprecision::exp(x); }
inline HighPrecision log(const HighPrecision& x) { return boost::multiprecision::log(x); }
inline HighPrecision sqrt(const HighPrecision& x) { return boost::multiprecision::sqrt(x); }
inline HighPrecision tanh(const HighPrecision& x) { return boost::multiprecision::tanh(x); }
inline HighPrecision erf(const HighPrecision& x) { return boost::math::erf(x); }
inline HighPrecision cos(const HighPrecision& x) { return boost::multiprecision::cos(x); }
inline HighPrecision abs(const HighPrecision& x) { return boost::multiprecision::abs(x); }
inline HighPrecision max(const HighPrecision& a, const HighPrecision& b) { return a < b ? b : a; }
inline HighPrecision min(const HighPrecision& a, const HighPrecision& b) { return b < a ? b : a; }

/// pi in T (exact to the type's precision).
template <class T>
T pi() {
  return T(M_PI);
}
template <>
inline HighPrecision pi<HighPrecision>() {
  return boost::math::constants::pi<HighPrecision>();
}

}  // namespace gacc::reference
