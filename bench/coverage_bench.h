#pragma once
/// `gacc bench coverage`: how many generated cases a run needs until every pitfall has been caught
/// at least once, over seeds 1..20, with every part of a scenario drawn independently against the
/// stratified generator (Note [coverage], properties/generators.h).

#include <ostream>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/recipe.h"
#include "properties/generators.h"
#include "properties/property.h"

namespace gacc::bench {

/// For each seed and both generators, judges `pitfalls` on cases 0, 1, 2, ... (no shrinking) until
/// every one has been caught in some case, or `max_cases` pass; prints per seed and the median and
/// maximum over seeds, and which pitfalls took longest; returns the figures.
nlohmann::json run_coverage_bench(std::ostream& out, const std::vector<const properties::Property*>& properties,
                                  const std::vector<const Recipe*>& pitfalls, const properties::GeneratorRange& range,
                                  int max_cases, int seeds);

}  // namespace gacc::bench
