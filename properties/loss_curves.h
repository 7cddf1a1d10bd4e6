#pragma once
/// Loss curves for the demonstrator (`gacc pitfalls --plot DIR`): the correct loop, the true large
/// batch and each pitfall trained for tens of steps, drawn as SVG.

#include <string>
#include <vector>

#include "core/recipe.h"
#include "core/scenario.h"

namespace gacc::properties {

/// One line of a plot: a name and a value per optimizer step.
struct Curve {
  std::string name;
  std::vector<double> values;
};

/// The scenario the curves are trained on for `recipe`: the tiny language model over 30 steps of
/// K = 4 uneven, partly ignored, variable-length micro-batches, with AdamW, warm-up, weight decay
/// and active clipping — so that every pitfall of the catalog shows; BatchNorm pitfalls get an MLP
/// with BatchNorm instead, data-parallel pitfalls the same training over two ranks (the routed MLP
/// where they need parameters to go unused).
Scenario curve_scenario(const Recipe& recipe);

/// The true large-batch loss of the window at the parameters `recipe` had before each step (the
/// oracle's evaluation, so that a pitfall's mis-reported loss does not hide what its weights do).
Curve true_loss_curve(const Recipe& recipe, const Scenario& scenario);

/// The large batch itself: the oracle's trajectory.
Curve large_batch_curve(const Scenario& scenario);

/// An SVG plot of curves against the optimizer step.
std::string svg_plot(const std::string& title, const std::string& subtitle, const std::vector<Curve>& curves);

/// Writes DIR/<pitfall>.svg for every pitfall and DIR/index.svg with all of them side by side;
/// returns the files written. Throws EnvironmentError if DIR cannot be written.
std::vector<std::string> write_loss_curves(const std::string& directory, const std::vector<const Recipe*>& recipes);

}  // namespace gacc::properties
