#include "reference/models.hpp"

namespace gacc::reference {

#define GACC_INSTANTIATE_MODELS(T)                                                                     \
  template ModelEvaluation<T> loss_and_gradient<T>(const Scenario&, const std::vector<T>&,            \
                                                   const std::vector<T>&, const fixtures::Batch&,     \
                                                   const EvaluationOptions&);

GACC_INSTANTIATE_MODELS(float)
GACC_INSTANTIATE_MODELS(double)
GACC_INSTANTIATE_MODELS(HighPrecision)
GACC_INSTANTIATE_MODELS(Bounded)
GACC_INSTANTIATE_MODELS(Stochastic)

#undef GACC_INSTANTIATE_MODELS

}  // namespace gacc::reference
