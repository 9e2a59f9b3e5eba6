#include "eval/eval_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "io/file_util.h"
#include "io/report_json.h"
#include "io/report_file.h"
#include "io/svg_chart.h"

namespace modelpress::eval {
namespace {

using nlohmann::ordered_json;

std::string fmt(double v, const char* f = "%.4g") {
  if (!std::isfinite(v)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

ordered_json speed_json(const Speed& s) {
  return {{"prefill_tokens", s.prefill_tokens},
          {"prefill_tokens_per_s", json_number(s.prefill_tokens_per_s)},
          {"decode_tokens", s.decode_tokens},
          {"decode_tokens_per_s", json_number(s.decode_tokens_per_s)}};
}

// One line of the summary table: what, value, how to read it. The Markdown, HTML and
// terminal forms all print these rows.
struct Row {
  std::string metric, value, meaning;
};

std::vector<Row> rows_of(const EvalReport& r) {
  std::vector<Row> rows;
  if (const auto& d = r.decoder) {
    rows.push_back({"tokens scored", std::to_string(d->scored) + " of " + std::to_string(d->tokens),
                    std::to_string(d->windows) + " windows of " + std::to_string(d->ctx) + ", stride " +
                        std::to_string(d->stride)});
    rows.push_back({"perplexity", fmt(d->perplexity, "%.4f"), "exp(mean NLL) of the model, lower is better"});
    if (d->has_reference) {
      rows.push_back({"reference perplexity", fmt(d->reference_perplexity, "%.4f"), "the same tokens, the reference"});
      rows.push_back({"perplexity change", fmt(100 * (d->perplexity / d->reference_perplexity - 1), "%+.3f%%"),
                      "model vs reference"});
      rows.push_back({"KLD mean", fmt(d->kld_mean, "%.6f"), "KL(reference || model) per token, nats; 0 is identical"});
      rows.push_back({"KLD median", fmt(d->kld_median, "%.6f"), ""});
      rows.push_back({"KLD p99", fmt(d->kld_p99, "%.6f"), "99th percentile over tokens"});
      rows.push_back({"top-1 agreement", fmt(100 * d->top1_agreement, "%.2f%%"),
                      "tokens where both models' most likely next token is the same"});
    }
    if (d->speed.decode_tokens > 0) {
      rows.push_back({"prefill", fmt(d->speed.prefill_tokens_per_s, "%.1f") + " tokens/s",
                      std::to_string(d->speed.prefill_tokens) + " tokens in one pass, batch 1"});
      rows.push_back({"decode", fmt(d->speed.decode_tokens_per_s, "%.1f") + " tokens/s",
                      std::to_string(d->speed.decode_tokens) + " greedy steps through the KV cache"});
      if (d->has_reference) {
        rows.push_back({"reference prefill", fmt(d->reference_speed.prefill_tokens_per_s, "%.1f") + " tokens/s", ""});
        rows.push_back({"reference decode", fmt(d->reference_speed.decode_tokens_per_s, "%.1f") + " tokens/s",
                        "decode speedup " +
                            fmt(d->speed.decode_tokens_per_s / d->reference_speed.decode_tokens_per_s, "%.2fx")});
      }
    }
  }
  if (const auto& e = r.encoder) {
    rows.push_back({"sentences", std::to_string(e->sentences), std::to_string(e->tokens) + " tokens"});
    rows.push_back({"speed", fmt(e->tokens_per_s, "%.0f") + " tokens/s", "sentences in batches of about 512 tokens"});
    if (e->has_reference) {
      rows.push_back({"cosine mean", fmt(e->cosine_mean, "%.6f"), "embedding vs the reference's, 1 is identical"});
      rows.push_back({"cosine min", fmt(e->cosine_min, "%.6f"), "the worst sentence"});
      rows.push_back({"cosine p01", fmt(e->cosine_p01, "%.6f"), "1st percentile over sentences"});
      rows.push_back({"Spearman", fmt(e->spearman, "%.6f"),
                      "rank correlation of all " + std::to_string(e->pairs) + " pairwise similarities"});
    }
  }
  if (const auto& v = r.vit) {
    rows.push_back({"images", std::to_string(v->images),
                    "SYNTHETIC (seed " + std::to_string(v->seed) + "): no image data set is reachable here"});
    rows.push_back({"speed", fmt(v->images_per_s, "%.1f") + " images/s", "batches of 8"});
    if (v->has_reference) {
      rows.push_back({"CLS cosine mean", fmt(v->cls_cosine_mean, "%.6f"), "CLS feature vs the reference's"});
      rows.push_back({"CLS cosine min", fmt(v->cls_cosine_min, "%.6f"), "the worst image"});
      if (v->has_logits) {
        rows.push_back({"logit cosine mean", fmt(v->logit_cosine_mean, "%.6f"), "classifier logits vs the reference's"});
        rows.push_back({"top-1 agreement", fmt(100 * v->top1_agreement, "%.2f%%"), "same predicted label"});
      }
    }
  }
  return rows;
}

std::string nonfinite_line(const EvalReport& r) {
  std::string model, ref;
  if (r.decoder) model = r.decoder->first_nonfinite, ref = r.decoder->reference_first_nonfinite;
  if (r.encoder) model = r.encoder->first_nonfinite, ref = r.encoder->reference_first_nonfinite;
  if (r.vit) model = r.vit->first_nonfinite, ref = r.vit->reference_first_nonfinite;
  std::string s;
  if (!model.empty()) s += "non-finite activations in the model, first at " + model + ". ";
  if (!ref.empty()) s += "non-finite activations in the reference, first at " + ref + ".";
  return s;
}

BarChart chart_of(const EvalReport& r) {
  BarChart c;
  if (r.decoder && r.decoder->has_reference) {
    const auto& d = *r.decoder;
    c.title = "Mean KL divergence by position in the window";
    c.axis_label = "KLD (nats), lower is better";
    ChartSeries s{"KLD", "#4e79a7", {}};
    for (size_t b = 0; b < d.kld_by_position.size(); ++b) {
      const int64_t lo = static_cast<int64_t>(b) * d.bucket;
      c.categories.push_back("positions " + std::to_string(lo) + "-" + std::to_string(lo + d.bucket - 1));
      s.values.push_back(d.kld_by_position[b]);
    }
    c.series.push_back(std::move(s));
  } else if (r.encoder && r.encoder->has_reference) {
    const auto& e = *r.encoder;
    c.title = "Cosine to the reference, worst sentences";
    c.axis_label = "cosine, 1 is identical";
    std::vector<size_t> order(e.cosine.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return e.cosine[a] < e.cosine[b]; });
    ChartSeries s{"cosine", "#59a14f", {}};
    for (size_t i = 0; i < std::min<size_t>(20, order.size()); ++i) {
      c.categories.push_back("sentence " + std::to_string(order[i] + 1));
      s.values.push_back(e.cosine[order[i]]);
    }
    c.series.push_back(std::move(s));
    c.format = [](double v) { return fmt(v, "%.5f"); };
  } else if (r.vit && r.vit->has_reference) {
    const auto& v = *r.vit;
    c.title = "CLS-feature cosine to the reference, worst synthetic images";
    c.axis_label = "cosine, 1 is identical";
    std::vector<size_t> order(v.cls_cosine.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v.cls_cosine[a] < v.cls_cosine[b]; });
    ChartSeries s{"cosine", "#f28e2b", {}};
    for (size_t i = 0; i < std::min<size_t>(20, order.size()); ++i) {
      c.categories.push_back("image " + std::to_string(order[i]));
      s.values.push_back(v.cls_cosine[order[i]]);
    }
    c.series.push_back(std::move(s));
    c.format = [](double x) { return fmt(x, "%.5f"); };
  }
  return c;
}

}  // namespace

ordered_json eval_report_json(const EvalReport& r) {
  ordered_json j;
  j["model"] = r.model;
  j["reference"] = r.reference.empty() ? ordered_json(nullptr) : ordered_json(r.reference);
  j["architecture"] = r.architecture;
  j["backend"] = r.backend;
  j["text"] = {{"path", r.text_path}, {"bytes", r.text_bytes}, {"tokenizer", r.tokenizer}};
  if (const auto& d = r.decoder) {
    ordered_json dj;
    dj["ctx"] = d->ctx;
    dj["stride"] = d->stride;
    dj["windows"] = d->windows;
    dj["tokens"] = d->tokens;
    dj["scored_tokens"] = d->scored;
    dj["nll"] = json_number(d->nll);
    dj["perplexity"] = json_number(d->perplexity);
    if (d->has_reference) {
      dj["reference_nll"] = json_number(d->reference_nll);
      dj["reference_perplexity"] = json_number(d->reference_perplexity);
      dj["perplexity_delta"] = json_number(d->perplexity - d->reference_perplexity);
      dj["kld"] = {{"mean", json_number(d->kld_mean)}, {"median", json_number(d->kld_median)}, {"p99", json_number(d->kld_p99)},
                   {"max", json_number(d->kld_max)}};
      dj["top1_agreement"] = json_number(d->top1_agreement);
      ordered_json by = ordered_json::array();
      for (double v : d->kld_by_position) by.push_back(json_number(v));
      dj["kld_by_position"] = {{"bucket", d->bucket}, {"mean", by}};
    }
    if (d->speed.decode_tokens > 0) {
      dj["speed"] = speed_json(d->speed);
      if (d->has_reference) dj["reference_speed"] = speed_json(d->reference_speed);
    }
    j["decoder"] = dj;
  }
  if (const auto& e = r.encoder) {
    ordered_json ej;
    ej["sentences"] = e->sentences;
    ej["tokens"] = e->tokens;
    ej["tokens_per_s"] = json_number(e->tokens_per_s);
    if (e->has_reference) {
      ej["cosine"] = {{"mean", json_number(e->cosine_mean)}, {"min", json_number(e->cosine_min)}, {"p01", json_number(e->cosine_p01)}};
      ej["spearman"] = json_number(e->spearman);
      ej["pairs"] = e->pairs;
      ordered_json per = ordered_json::array();
      for (double v : e->cosine) per.push_back(json_number(v));
      ej["cosine_per_sentence"] = per;
    }
    j["encoder"] = ej;
  }
  if (const auto& v = r.vit) {
    ordered_json vj;
    vj["images"] = v->images;
    vj["synthetic"] = true;
    vj["seed"] = v->seed;
    vj["images_per_s"] = json_number(v->images_per_s);
    if (v->has_reference) {
      vj["cls_cosine"] = {{"mean", json_number(v->cls_cosine_mean)}, {"min", json_number(v->cls_cosine_min)}};
      if (v->has_logits) {
        vj["logit_cosine"] = {{"mean", json_number(v->logit_cosine_mean)}, {"min", json_number(v->logit_cosine_min)}};
        vj["top1_agreement"] = json_number(v->top1_agreement);
      }
    }
    j["vit"] = vj;
  }
  const std::string nf = nonfinite_line(r);
  j["nonfinite"] = nf.empty() ? ordered_json(nullptr) : ordered_json(nf);
  j["notes"] = r.notes;
  j["seconds"] = json_number(r.seconds);
  return j;
}

std::string eval_report_text(const EvalReport& r) {
  std::string s;
  for (const Row& row : rows_of(r)) {
    std::string line = "  " + row.metric;
    line.resize(std::max<size_t>(line.size() + 1, 24), ' ');
    s += line + row.value + (row.meaning.empty() ? "" : "   (" + row.meaning + ")") + "\n";
  }
  const std::string nf = nonfinite_line(r);
  if (!nf.empty()) s += "  " + nf + "\n";
  for (const auto& n : r.notes) s += "  note: " + n + "\n";
  return s;
}

std::string eval_report_markdown(const EvalReport& r) {
  std::string s = "# modelpress eval: " + r.model + "\n\n";
  if (!r.reference.empty()) s += "Reference: `" + r.reference + "`. ";
  s += "Text: `" + r.text_path + "` (" + std::to_string(r.text_bytes) + " bytes, " + r.tokenizer +
       " tokenizer). Backend: " + r.backend + ". Architecture: " + r.architecture + ".\n\n";
  s += "| metric | value | meaning |\n|---|---|---|\n";
  for (const Row& row : rows_of(r)) s += "| " + row.metric + " | " + row.value + " | " + row.meaning + " |\n";
  const std::string nf = nonfinite_line(r);
  if (!nf.empty()) s += "\n**" + nf + "**\n";
  for (const auto& n : r.notes) s += "\nNote: " + n + "\n";
  return s;
}

std::string eval_report_html(const EvalReport& r) {
  std::string s = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>modelpress eval</title>\n"
                  "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
                  "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>\n";
  s += "<h1>modelpress eval</h1>\n<p>Model: <code>" + xml_escape(r.model) + "</code>";
  if (!r.reference.empty()) s += "<br>Reference: <code>" + xml_escape(r.reference) + "</code>";
  s += "<br>Text: <code>" + xml_escape(r.text_path) + "</code> (" + std::to_string(r.text_bytes) + " bytes, " +
       xml_escape(r.tokenizer) + " tokenizer). Backend: " + xml_escape(r.backend) + ".</p>\n";
  s += "<table><tr><th>metric</th><th>value</th><th>meaning</th></tr>\n";
  for (const Row& row : rows_of(r))
    s += "<tr><td>" + xml_escape(row.metric) + "</td><td>" + xml_escape(row.value) + "</td><td>" +
         xml_escape(row.meaning) + "</td></tr>\n";
  s += "</table>\n";
  const std::string nf = nonfinite_line(r);
  if (!nf.empty()) s += "<p><strong>" + xml_escape(nf) + "</strong></p>\n";
  for (const auto& n : r.notes) s += "<p>Note: " + xml_escape(n) + "</p>\n";
  const BarChart chart = chart_of(r);
  if (!chart.categories.empty()) s += svg_bar_chart(chart) + "\n";
  s += "</body></html>\n";
  return s;
}

void write_eval_report(const std::string& path, const EvalReport& r) {
  std::string text;
  switch (report_kind_for(path)) {
    case ReportKind::Json:
      text = eval_report_json(r).dump(2, ' ', false, ordered_json::error_handler_t::replace) + "\n";
      break;
    case ReportKind::Markdown: text = eval_report_markdown(r); break;
    case ReportKind::Html: text = eval_report_html(r); break;
  }
  write_text_file(path, text);
}

}  // namespace modelpress::eval
