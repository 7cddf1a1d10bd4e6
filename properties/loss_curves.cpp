#include "properties/loss_curves.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <sstream>

#include "core/errors.h"
#include "core/files.h"
#include "reference/oracle.h"

namespace gacc::properties {
namespace {

constexpr int kCurveSteps = 30;

// A panel's geometry, in SVG user units.
constexpr double kWidth = 600, kHeight = 320, kLeft = 60, kRight = 220, kTop = 64, kBottom = 40;
constexpr size_t kSubtitleLine = 92;  // characters of an 11-unit sans-serif line across a panel
const char* const kColours[] = {"#444444", "#1f77b4", "#d62728", "#2ca02c", "#9467bd"};

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", x);
  return text;
}

/// One panel at (x, y): axes, the curves, a legend. Non-finite values end a line (a diverged run).
void panel(std::ostringstream& svg, double x, double y, const std::string& title, const std::string& subtitle,
           const std::vector<Curve>& curves) {
  double low = std::numeric_limits<double>::infinity(), high = -low;
  size_t steps = 1;
  for (const auto& c : curves) {
    steps = std::max(steps, c.values.size());
    for (double v : c.values) {
      if (std::isfinite(v)) {
        low = std::min(low, v);
        high = std::max(high, v);
      }
    }
  }
  if (!std::isfinite(low)) low = 0, high = 1;
  if (high - low < 1e-12) high = low + 1;
  const double plot_w = kWidth - kLeft - kRight, plot_h = kHeight - kTop - kBottom;
  auto px = [&](double step) {
    return x + kLeft + plot_w * step / std::max<double>(1, static_cast<double>(steps - 1));
  };
  auto py = [&](double v) { return y + kTop + plot_h * (1 - (v - low) / (high - low)); };

  svg << "<g font-family=\"sans-serif\" font-size=\"11\">\n";
  svg << "<text x=\"" << x + 10 << "\" y=\"" << y + 18 << "\" font-size=\"14\" font-weight=\"bold\">"
      << escape(title) << "</text>\n";
  // The subtitle on up to two lines, broken at a space.
  std::string first = subtitle, second;
  if (first.size() > kSubtitleLine) {
    const size_t cut = first.rfind(' ', kSubtitleLine);
    second = first.substr(cut == std::string::npos ? kSubtitleLine : cut + 1);
    first = first.substr(0, cut == std::string::npos ? kSubtitleLine : cut);
    if (second.size() > kSubtitleLine) second = second.substr(0, kSubtitleLine - 3) + "...";
  }
  svg << "<text x=\"" << x + 10 << "\" y=\"" << y + 34 << "\" fill=\"#555\">" << escape(first) << "</text>\n";
  svg << "<text x=\"" << x + 10 << "\" y=\"" << y + 48 << "\" fill=\"#555\">" << escape(second)
      << "</text>\n";
  svg << "<rect x=\"" << x + kLeft << "\" y=\"" << y + kTop << "\" width=\"" << plot_w << "\" height=\""
      << plot_h << "\" fill=\"none\" stroke=\"#999\"/>\n";
  for (int t = 0; t <= 4; ++t) {
    const double v = low + (high - low) * t / 4;
    svg << "<text x=\"" << x + kLeft - 6 << "\" y=\"" << py(v) + 4 << "\" text-anchor=\"end\">" << number(v)
        << "</text>\n";
  }
  svg << "<text x=\"" << px(0) << "\" y=\"" << y + kHeight - 22 << "\" text-anchor=\"middle\">0</text>\n";
  svg << "<text x=\"" << px(static_cast<double>(steps - 1)) << "\" y=\"" << y + kHeight - 22
      << "\" text-anchor=\"middle\">" << steps - 1 << "</text>\n";
  svg << "<text x=\"" << x + kLeft + plot_w / 2 << "\" y=\"" << y + kHeight - 8
      << "\" text-anchor=\"middle\" fill=\"#555\">optimizer step (true loss of a fixed batch)</text>\n";
  for (size_t c = 0; c < curves.size(); ++c) {
    const char* colour = kColours[c % (sizeof kColours / sizeof *kColours)];
    std::string points;
    for (size_t s = 0; s < curves[c].values.size(); ++s) {
      const double v = curves[c].values[s];
      if (!std::isfinite(v)) break;
      points += number(px(static_cast<double>(s))) + "," + number(py(v)) + " ";
    }
    svg << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"" << (c == 0 ? 3 : 2)
        << "\" stroke-opacity=\"" << (c == 0 ? 0.5 : 0.9) << "\" points=\"" << points << "\"/>\n";
    const double ly = y + kTop + 14 + 18.0 * static_cast<double>(c);
    svg << "<line x1=\"" << x + kWidth - kRight + 10 << "\" y1=\"" << ly - 4 << "\" x2=\""
        << x + kWidth - kRight + 30 << "\" y2=\"" << ly - 4 << "\" stroke=\"" << colour
        << "\" stroke-width=\"3\"/>\n";
    svg << "<text x=\"" << x + kWidth - kRight + 35 << "\" y=\"" << ly << "\">" << escape(curves[c].name)
        << "</text>\n";
  }
  svg << "</g>\n";
}

std::string document(double width, double height, const std::string& body) {
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\""
      << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width << " " << height << "\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << body << "</svg>\n";
  return svg.str();
}

/// The loss of the first window at `params` (NaN when the parameters are not finite).
double fixed_batch_loss(const reference::Oracle& oracle, const std::vector<double>& params,
                        const std::vector<double>& buffers) {
  try {
    return oracle.window_from(0, params, {}, buffers).loss;
  } catch (const std::exception&) {
    return std::numeric_limits<double>::quiet_NaN();
  }
}

}  // namespace

Scenario curve_scenario(const Recipe& recipe) {
  Scenario sc;
  const int k = 4;
  sc.accumulation_steps = k;
  sc.steps = kCurveSteps;
  sc.data.seed = 5;
  sc.optimizer.kind = OptimizerKind::adamw;
  sc.optimizer.lr = 0.05;
  sc.optimizer.weight_decay = 0.1;
  sc.schedule.kind = ScheduleKind::linear_warmup;
  sc.schedule.warmup_steps = 10;
  sc.schedule.start_factor = 0.1;
  sc.clipping.kind = ClippingKind::norm;
  sc.clipping.max_norm = 0.5;
  const std::vector<int64_t> split = {3, 5, 4, 4};
  sc.data.global_batch = 16;
  for (int s = 0; s < kCurveSteps; ++s) sc.data.windows.push_back({split});
  sc.data.windows.back() = {{3, 5}};  // a partial last window
  Scenario lm = sc;
  lm.model.arch = Architecture::causal_lm;
  lm.model.vocab_size = 16;
  lm.model.d_model = 8;
  lm.model.max_seq_len = 8;
  lm.model.init_seed = 3;
  lm.loss = {LossKind::cross_entropy, Reduction::token_mean};
  lm.data.ignored_fraction = 0.25;
  for (int64_t i = 0; i < total_examples(lm); ++i) lm.data.sequence_lengths.push_back((i * 5 + 3) % 9);
  validate(lm);
  if (recipe.supports(lm)) return lm;
  // The fp16 pitfalls: the same model under dynamic loss scaling that grows every third step, so
  // that the scale climbs into overflow and backs off within the run.
  Scenario lm16 = lm;
  lm16.precision = Precision::fp16;
  lm16.loss_scale = {65536.0, 2.0, 0.5, 3};
  validate(lm16);
  if (recipe.supports(lm16)) return lm16;
  // The data-parallel pitfalls: the same training over two ranks, the second with a smaller share
  // of every window (the language model; the routed MLP, whose experts go unused, for those that
  // need it).
  // SGD with momentum: Adam's normalization would hide a gradient off by a factor of W.
  const auto over_two_ranks = [](Scenario one) {
    one.world_size = 2;
    one.optimizer = OptimizerSpec{};
    one.optimizer.kind = OptimizerKind::sgd;
    one.optimizer.lr = 0.25;
    one.optimizer.momentum = 0.9;
    for (auto& window : one.data.windows) {
      auto second = window.front();
      for (auto& m : second) m = (m + 1) / 2;  // an unequal share: per-rank normalization shows
      window.push_back(second);
    }
    one.data.global_batch = 0;
    for (const auto& rank : one.data.windows.front()) {
      for (const int64_t m : rank) one.data.global_batch += m;
    }
    if (!one.data.sequence_lengths.empty()) {
      one.data.sequence_lengths.clear();
      for (int64_t i = 0; i < total_examples(one); ++i) one.data.sequence_lengths.push_back((i * 5 + 3) % 9);
    }
    validate(one);
    return one;
  };
  const Scenario lm2 = over_two_ranks(lm);
  if (recipe.supports(lm2)) return lm2;
  Scenario routed = sc;
  routed.model.arch = Architecture::mlp_routed;
  routed.model.input_dim = 4;
  routed.model.hidden_dim = 8;
  routed.model.output_dim = 2;
  routed.model.init_seed = 3;
  routed.loss = {LossKind::mse, Reduction::mean};
  const Scenario routed2 = over_two_ranks(routed);
  if (recipe.supports(routed2)) return routed2;
  Scenario bn = sc;
  bn.model.arch = Architecture::mlp_batch_norm;
  bn.model.input_dim = 4;
  bn.model.hidden_dim = 8;
  bn.model.output_dim = 2;
  bn.model.init_seed = 3;
  bn.loss = {LossKind::mse, Reduction::mean};
  validate(bn);
  return bn;
}

Curve true_loss_curve(const Recipe& recipe, const Scenario& scenario) {
  Curve curve{recipe.name(), {}};
  Trace trace;
  try {
    trace = recipe.run(scenario);
  } catch (const std::exception&) {
    return curve;
  }
  const reference::Oracle oracle(scenario, {false, nullptr, is_batch_coupled(scenario.model)});
  curve.values.push_back(fixed_batch_loss(oracle, oracle.initial_params(), oracle.initial_buffers()));
  for (int s = 0; s < scenario.steps && s < static_cast<int>(trace.steps.size()); ++s) {
    curve.values.push_back(
        fixed_batch_loss(oracle, trace.steps[s].params_after, trace.steps[s].buffers_after));
    if (!std::isfinite(curve.values.back())) break;
  }
  return curve;
}

Curve large_batch_curve(const Scenario& scenario) {
  const reference::Oracle oracle(scenario, {false, nullptr, false});
  Curve curve{"large batch (oracle)",
              {fixed_batch_loss(oracle, oracle.initial_params(), oracle.initial_buffers())}};
  for (const auto& e : oracle.trajectory())
    curve.values.push_back(fixed_batch_loss(oracle, e.params_after, e.buffers_after));
  return curve;
}

std::string svg_plot(const std::string& title, const std::string& subtitle,
                     const std::vector<Curve>& curves) {
  std::ostringstream body;
  panel(body, 0, 0, title, subtitle, curves);
  return document(kWidth, kHeight, body.str());
}

std::vector<std::string> write_loss_curves(const std::string& directory,
                                           const std::vector<const Recipe*>& recipes) {
  std::error_code ec;
  std::filesystem::create_directories(directory, ec);
  if (ec) throw EnvironmentError("cannot create " + directory + ": " + ec.message());
  // Beside each pitfall, the first correct recipe that runs its scenario (one rank or several).
  const auto correct_for = [&recipes](const Scenario& sc) -> const Recipe* {
    for (const auto* r : recipes) {
      if (r->kind() == RecipeKind::correct && r->supports(sc)) return r;
    }
    return nullptr;
  };
  std::vector<std::string> written;
  std::ostringstream index;
  int panels = 0;
  constexpr int kColumns = 3;
  for (const auto* r : recipes) {
    if (r->kind() != RecipeKind::pitfall) continue;
    const Scenario sc = curve_scenario(*r);
    if (!r->supports(sc)) continue;
    std::vector<Curve> curves = {large_batch_curve(sc)};
    if (const Recipe* correct = correct_for(sc)) curves.push_back(true_loss_curve(*correct, sc));
    curves.push_back(true_loss_curve(*r, sc));
    const std::string subtitle =
        to_string(sc.model.arch) + (sc.precision == Precision::fp32 ? "" : " in " + to_string(sc.precision)) +
        ", K = 4 uneven" + (sc.world_size > 1 ? " on " + std::to_string(sc.world_size) + " ranks" : "") + ", " +
        std::to_string(sc.steps) + " steps: " + r->summary();
    const std::string path = (std::filesystem::path(directory) / (r->name() + ".svg")).string();
    write_file_atomically(path, svg_plot(r->name(), subtitle, curves));
    written.push_back(path);
    panel(index, kWidth * (panels % kColumns), kHeight * (panels / kColumns), r->name(), subtitle, curves);
    ++panels;
  }
  const int rows = (panels + kColumns - 1) / kColumns;
  const std::string path = (std::filesystem::path(directory) / "index.svg").string();
  write_file_atomically(path, document(kWidth * kColumns, kHeight * std::max(rows, 1), index.str()));
  written.push_back(path);
  return written;
}

}  // namespace gacc::properties
