// Training curves as a dependency-free SVG: two panels (loss, accuracy), train and validation.
#include <algorithm>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "examples/common.hpp"

namespace tapegrad::examples {
namespace {

struct Series {
  std::string name, color;
  std::vector<double> values;  // one per epoch, NaN where missing
  bool dashed;
};

// A tick label with 3 significant digits (its own stream: coordinates keep full precision).
std::string tick(double v) {
  std::ostringstream os;
  os << std::setprecision(3) << v;
  return os.str();
}

// One panel at (x0, y0) of size w × h with axes, ticks and a polyline per series.
void panel(std::ostringstream& os, double x0, double y0, double w, double h, const std::string& title,
           const std::vector<Series>& series, const std::vector<double>& x_ticks, const std::string& x_label) {
  double lo = INFINITY, hi = -INFINITY;
  size_t n = 0;
  for (const auto& s : series)
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), n = std::max(n, s.values.size());
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) lo -= 0.5, hi += 0.5;
  const double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  const double l = x0 + 55, r = x0 + w - 10, t = y0 + 30, b = y0 + h - 40;
  auto px = [&](size_t i) { return n <= 1 ? (l + r) / 2 : l + (r - l) * static_cast<double>(i) / double(n - 1); };
  auto py = [&](double v) { return b - (b - t) * (v - lo) / (hi - lo); };

  os << "<text x='" << l << "' y='" << y0 + 18 << "' font-size='14'>" << title << "</text>\n";
  os << "<rect x='" << l << "' y='" << t << "' width='" << r - l << "' height='" << b - t
     << "' fill='none' stroke='#888'/>\n";
  for (int k = 0; k <= 4; ++k) {
    double v = lo + (hi - lo) * k / 4.0, y = py(v);
    os << "<line x1='" << l << "' y1='" << y << "' x2='" << r << "' y2='" << y << "' stroke='#eee'/>"
       << "<text x='" << l - 5 << "' y='" << y + 4 << "' text-anchor='end' font-size='10'>" << tick(v)
       << "</text>\n";
  }
  // At most ~12 labels along x, so long runs stay readable.
  const size_t every = std::max<size_t>(1, (n + 11) / 12);
  for (size_t i = 0; i < n; i += every)
    os << "<text x='" << px(i) << "' y='" << b + 14 << "' text-anchor='middle' font-size='10'>"
       << (i < x_ticks.size() ? static_cast<int64_t>(x_ticks[i]) : static_cast<int64_t>(i + 1)) << "</text>\n";
  os << "<text x='" << (l + r) / 2 << "' y='" << b + 30 << "' text-anchor='middle' font-size='11'>" << x_label
     << "</text>\n";
  // The legend sits above the plot's top-right corner, outside the data: no point can hide under it.
  double lx = r;
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    const auto& s = *it;
    if (std::none_of(s.values.begin(), s.values.end(), [](double v) { return std::isfinite(v); })) continue;
    os << "<text x='" << lx << "' y='" << y0 + 18 << "' text-anchor='end' font-size='11' fill='" << s.color << "'>"
       << s.name << "</text>";
    lx -= 6.0 * static_cast<double>(s.name.size()) + 6;
    os << "<line x1='" << lx - 18 << "' y1='" << y0 + 14 << "' x2='" << lx << "' y2='" << y0 + 14 << "' stroke='"
       << s.color << "' stroke-width='2'" << (s.dashed ? " stroke-dasharray='6,3'" : "") << "/>\n";
    lx -= 28;
  }
  for (const auto& s : series) {
    std::string points;
    for (size_t i = 0; i < s.values.size(); ++i) {
      if (!std::isfinite(s.values[i])) continue;
      std::ostringstream p;
      p << px(i) << ',' << py(s.values[i]) << ' ';
      points += p.str();
      os << "<circle cx='" << px(i) << "' cy='" << py(s.values[i]) << "' r='2.5' fill='" << s.color << "'/>";
    }
    if (points.empty()) continue;
    os << "<polyline fill='none' stroke-width='2' stroke='" << s.color << "'"
       << (s.dashed ? " stroke-dasharray='6,3'" : "") << " points='" << points << "'/>\n";
  }
}

}  // namespace

std::string curves_svg(const train::History& history, const std::string& title, const CurvesOptions& options) {
  const double w = 420, h = 300;
  const int panels = options.second_metric.empty() ? 1 : 2;
  std::vector<double> x_ticks;
  for (const auto& e : history.epochs) x_ticks.push_back(static_cast<double>(e.epoch));
  std::ostringstream os;
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << panels * w << "' height='" << h + 30
     << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n"
     << "<text x='" << panels * w / 2 << "' y='18' text-anchor='middle' font-size='15' font-weight='bold'>" << title
     << "</text>\n";
  panel(os, 0, 30, w, h, "loss",
        {{"train", "#1f77b4", history.series("loss"), false}, {"validation", "#ff7f0e", history.series("val_loss"), true}},
        x_ticks, options.x_label);
  if (panels == 2)
    panel(os, w, 30, w, h, options.second_metric,
          {{"train", "#1f77b4", history.series(options.second_metric), false},
           {"validation", "#ff7f0e", history.series("val_" + options.second_metric), true}},
          x_ticks, options.x_label);
  os << "</svg>\n";
  return os.str();
}

std::string panels_svg(const std::string& title, const std::vector<PlotPanel>& panels, const std::string& x_label) {
  const double w = 420, h = 300;
  const auto n = static_cast<double>(panels.size());
  std::ostringstream os;
  os << "<svg xmlns='http://www.w3.org/2000/svg' width='" << n * w << "' height='" << h + 30
     << "' font-family='sans-serif'>\n<rect width='100%' height='100%' fill='white'/>\n"
     << "<text x='" << n * w / 2 << "' y='18' text-anchor='middle' font-size='15' font-weight='bold'>" << title
     << "</text>\n";
  for (size_t p = 0; p < panels.size(); ++p) {
    std::vector<Series> series;
    for (const PlotSeries& s : panels[p].series) series.push_back({s.name, s.color, s.values, s.dashed});
    panel(os, static_cast<double>(p) * w, 30, w, h, panels[p].title, series, {}, x_label);
  }
  os << "</svg>\n";
  return os.str();
}

}  // namespace tapegrad::examples
