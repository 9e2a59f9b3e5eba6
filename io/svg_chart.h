// Horizontal grouped bar charts as standalone SVG text, drawn by our own code so the HTML
// report needs no script or external resource. One row of bars per category (a layer
// name reads better down the side than slanted under a column), one bar per series.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace modelpress {

struct ChartSeries {
  std::string label;
  std::string color;           // any CSS colour: "#4e79a7"
  std::vector<double> values;  // one per category; NaN: no value; +-inf: drawn to the edge, labelled
  // Text where a value is NaN: "n/a" by default; "" for a series that only some
  // categories have (a variant measured on some layers), so absent bars stay quiet.
  std::string missing_label = "n/a";
};

struct BarChart {
  std::string title;
  std::string axis_label;               // under the axis: "SQNR (dB), higher is better"
  std::vector<std::string> categories;  // one group of bars each
  std::vector<ChartSeries> series;
  int width = 1100;                     // pixels; the height follows from the categories
  std::function<std::string(double)> format;  // value labels; default "%.3g" (ticks: "%g")
  std::string infinity_label = "inf";   // text beside a bar whose value is +inf
};

// The chart as an <svg> element (with xmlns, so it also stands alone as a .svg file).
// Throws Error when a series has a different number of values than there are categories.
std::string svg_bar_chart(const BarChart& chart);

// Escapes &, <, >, " and ' for XML text and attribute values.
std::string xml_escape(const std::string& text);

}  // namespace modelpress
