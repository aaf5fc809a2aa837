// Attribution maps for the seed MLP and the small CNN on MNIST digits (nn/explain.hpp).
//
// For each model: loads its weights from --out (or the seed model from out/mnist_mlp/model.safetensors,
// what `make demo` writes) or trains it and saves them there, then takes the first test image of every
// class and writes <out>/<model>.png: one row per digit, columns
//     input | saliency |∂p/∂x| | SmoothGrad (25 draws, σ = 15 %) | Integrated Gradients (64 steps, black baseline)
// with the maps in a diverging colour map (red positive, blue negative, white 0) over the digit, and
// <out>/completeness.json: per image the explained class, the prediction, F(x), F(baseline), Σ IG and
// the completeness error |Σ IG − (F(x) − F(x′))| / |F(x) − F(x′)|. The explained score is the softmax
// probability of the true class (the Keras seed model's Dense(10, softmax)).
// When out/char_gpt holds the character GPT of `make demo-gpt`, also <out>/char_gpt_attention.svg (its
// attention maps for the prompt) and <out>/char_gpt_ig.svg: per-character
// IG (through the token embeddings) of the log-probability of a proverb's last character.
//
// Usage: explain [--data DIR] [--out DIR] [--epochs N] ... (the flags of mnist_mlp; --help lists them)
#include <png.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "datasets/text.hpp"
#include "examples/common.hpp"
#include "nn/nn.hpp"
#include "nn/serialize.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {

constexpr int kScale = 4;  // each 28×28 map drawn 112×112
constexpr int kGap = 6;

/// An 8-bit RGB image.
struct Image {
  int width, height;
  std::vector<uint8_t> rgb;
  Image(int w, int h) : width(w), height(h), rgb(static_cast<size_t>(w * h * 3), 255) {}
  void set(int x, int y, const std::array<double, 3>& c) {
    for (int k = 0; k < 3; ++k)
      rgb[static_cast<size_t>((y * width + x) * 3 + k)] = static_cast<uint8_t>(std::clamp(c[k], 0.0, 255.0) + 0.5);
  }
};

/// Writes `image` as an 8-bit RGB PNG with libpng; throws std::runtime_error naming the file.
void write_png(const Image& image, const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (!file) throw std::runtime_error("explain: cannot open " + path + " for writing");
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    std::fclose(file);
    throw std::runtime_error("explain: libpng failed to write " + path);
  }
  png_init_io(png, file);
  png_set_IHDR(png, info, static_cast<png_uint_32>(image.width), static_cast<png_uint_32>(image.height), 8,
               PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, const_cast<png_bytep>(image.rgb.data() + static_cast<size_t>(y * image.width * 3)));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  if (std::fclose(file) != 0) throw std::runtime_error("explain: cannot finish writing " + path);
}

/// ColorBrewer's RdBu ends: t in [−1, 1] → blue … white … red.
std::array<double, 3> diverging(double t) {
  const std::array<double, 3> red{178, 24, 43}, blue{33, 102, 172}, white{255, 255, 255};
  const auto& end = t >= 0 ? red : blue;
  const double a = std::min(1.0, std::abs(t));
  return {white[0] + a * (end[0] - white[0]), white[1] + a * (end[1] - white[1]), white[2] + a * (end[2] - white[2])};
}

/// Draws a 28×28 cell at (x0, y0): the digit alone (`map` empty) in gray, or the map's colour over
/// the digit (darkened where the stroke is, so the digit's outline shows through). The map is scaled
/// by the 99th percentile of its |values|, so one extreme pixel does not wash out the rest.
void draw_cell(Image& img, int x0, int y0, const std::vector<double>& digit, const std::vector<double>& map) {
  double scale = 1.0;
  if (!map.empty()) {
    std::vector<double> mags;
    for (double v : map) mags.push_back(std::abs(v));
    std::sort(mags.begin(), mags.end());
    scale = std::max(mags[static_cast<size_t>(0.99 * static_cast<double>(mags.size() - 1))], 1e-12);
  }
  for (int r = 0; r < 28; ++r)
    for (int c = 0; c < 28; ++c) {
      const double d = std::clamp(digit[static_cast<size_t>(r * 28 + c)], 0.0, 1.0);
      std::array<double, 3> colour;
      if (map.empty()) {
        colour = {255 * (1 - d), 255 * (1 - d), 255 * (1 - d)};  // dark strokes on white
      } else {
        colour = diverging(map[static_cast<size_t>(r * 28 + c)] / scale);
        for (double& k : colour) k *= 1.0 - 0.35 * d;
      }
      for (int dy = 0; dy < kScale; ++dy)
        for (int dx = 0; dx < kScale; ++dx) img.set(x0 + c * kScale + dx, y0 + r * kScale + dy, colour);
    }
}

/// The first test image of every class (fewer if a class is missing), as [n, 1, 28, 28] and labels.
std::pair<Tensor, std::vector<int64_t>> one_per_class(const datasets::ImageDataset& test) {
  const std::vector<double> labels = test.labels().to_vector();
  std::vector<int64_t> picks, classes;
  for (int64_t c = 0; c < 10; ++c)
    for (size_t i = 0; i < labels.size(); ++i)
      if (static_cast<int64_t>(labels[i]) == c) {
        picks.push_back(static_cast<int64_t>(i));
        classes.push_back(c);
        break;
      }
  return {test.get(picks).x, classes};
}

/// Loads `model` from the first existing file of `paths`, or trains it on `train` and saves it to paths[0].
void load_or_train(nn::UnaryModule& model, const std::vector<std::string>& paths, const examples::Args& args,
                   const std::shared_ptr<datasets::ImageDataset>& train, const std::string& name) {
  for (const auto& p : paths)
    if (fs::exists(p)) {
      nn::load(model, p);
      std::cout << name << ": weights from " << p << "\n";
      return;
    }
  std::cout << name << ": training " << args.epochs << " epoch(s) (no weights in " << paths[0] << ")\n";
  auto optimizer = examples::make_optimizer(args, model.parameters());
  train::FitOptions options;
  options.epochs = args.epochs;
  options.batch_size = args.batch_size;
  options.seed = args.seed;
  options.quiet = args.quiet;
  train::fit(model, *optimizer, examples::cross_entropy_loss, train, options);
  fs::create_directories(fs::path(paths[0]).parent_path());
  nn::save(model, paths[0]);
}

/// Attribution maps of `logits` (softmax on top) for `x`; writes the PNG and returns the JSON report.
nlohmann::json explain_model(const std::shared_ptr<nn::Sequential>& logits, const Tensor& x,
                             const std::vector<int64_t>& classes, const std::string& png_path, uint64_t seed) {
  nn::Sequential model(logits, nn::Softmax());
  const auto target = nn::Target::class_indices(index_tensor(classes));
  Generator gen(seed);
  Tensor sal = nn::saliency(model, x, target);
  Tensor sg = nn::smooth_grad(model, x, target, nn::SmoothGradOptions().samples(25).noise_level(0.15), gen);
  auto ig = nn::integrated_gradients(model, x, target, nn::IntegratedGradientsOptions().steps(64));
  std::vector<double> predicted;
  {
    NoGradGuard off;
    predicted = argmax((*logits)(x), 1).to_vector();
  }

  const int n = static_cast<int>(classes.size()), cell = 28 * kScale;
  Image img(4 * cell + 5 * kGap, n * cell + (n + 1) * kGap);
  const std::vector<double> xv = x.to_vector(), sv = sal.to_vector(), gv = sg.to_vector(),
                            iv = ig.attributions.to_vector();
  auto part = [](const std::vector<double>& v, int i) {
    return std::vector<double>(v.begin() + i * 784, v.begin() + (i + 1) * 784);
  };
  nlohmann::json images = nlohmann::json::array();
  for (int i = 0; i < n; ++i) {
    const int y0 = kGap + i * (cell + kGap);
    draw_cell(img, kGap, y0, part(xv, i), {});
    draw_cell(img, 2 * kGap + cell, y0, part(xv, i), part(sv, i));
    draw_cell(img, 3 * kGap + 2 * cell, y0, part(xv, i), part(gv, i));
    draw_cell(img, 4 * kGap + 3 * cell, y0, part(xv, i), part(iv, i));
    const auto& c = ig.completeness[static_cast<size_t>(i)];
    images.push_back(
        {{"class", classes[static_cast<size_t>(i)]},
         {"predicted", static_cast<int64_t>(predicted[static_cast<size_t>(i)])},
         {"output", c.output_difference + ig.baseline_output.to_vector()[static_cast<size_t>(i)]},
         {"baseline_output", ig.baseline_output.to_vector()[static_cast<size_t>(i)]},
         {"attribution_sum", c.attribution_sum},
         {"relative_error", c.relative_error ? nlohmann::json(*c.relative_error) : nlohmann::json(nullptr)}});
  }
  write_png(img, png_path);
  const auto worst = ig.max_relative_error();
  std::cout << "  wrote " << png_path << "; IG completeness: max relative error "
            << (worst ? std::to_string(*worst) : std::string("undefined")) << " over " << n << " images\n";
  return {
      {"png", png_path},
      {"columns", {"input", "saliency |dp/dx|", "SmoothGrad (25 draws, noise 15%)", "Integrated Gradients (64 steps)"}},
      {"target", "softmax probability of the true class"},
      {"ig_steps", 64},
      {"ig_baseline", "zeros (black image)"},
      {"max_relative_error", worst ? nlohmann::json(*worst) : nlohmann::json(nullptr)},
      {"images", images}};
}

/// The text for SVG: XML's five specials escaped, a newline drawn as ⏎.
std::string svg_text(char c) {
  switch (c) {
    case '&':
      return "&amp;";
    case '<':
      return "&lt;";
    case '>':
      return "&gt;";
    case '"':
      return "&quot;";
    case '\'':
      return "&apos;";
    case '\n':
      return "\u23CE";
    case ' ':
      return "\u00B7";  // a middle dot, so spaces with attribution show
    default:
      return std::string(1, c);
  }
}

/// The GPT's attention maps ([1, T, T] per block) side by side as an SVG: row i is query position i
/// (its character on the left), column j key position j (its character on top), white 0 to dark
/// blue 1; the causal triangle above the diagonal stays white.
std::string attention_svg(const std::vector<Tensor>& maps, const std::string& context) {
  const int T = static_cast<int>(context.size()), cell = 9, label = 14, gap = 24, side = cell * T;
  const int width = 10 + static_cast<int>(maps.size()) * (label + side + gap), height = 40 + label + side;
  std::string svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) + "\" height=\"" +
                    std::to_string(height) + "\" font-family=\"monospace\" font-size=\"9\">\n"
                    "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
                    "<text x=\"10\" y=\"16\" font-size=\"12\">Attention of each block (mean over heads): row = "
                    "query position, column = key position</text>\n";
  for (size_t b = 0; b < maps.size(); ++b) {
    const std::vector<double> w = maps[b].to_vector();
    const int x0 = 10 + static_cast<int>(b) * (label + side + gap) + label, y0 = 30 + label;
    svg += "<text x=\"" + std::to_string(x0) + "\" y=\"" + std::to_string(y0 + side + 12) + "\" font-size=\"11\">block " +
           std::to_string(b) + "</text>\n";
    for (int t = 0; t < T; ++t) {
      const std::string c = svg_text(context[static_cast<size_t>(t)]);
      svg += "<text x=\"" + std::to_string(x0 + t * cell + 1) + "\" y=\"" + std::to_string(y0 - 3) + "\">" + c +
             "</text><text x=\"" + std::to_string(x0 - label + 3) + "\" y=\"" + std::to_string(y0 + t * cell + 8) +
             "\">" + c + "</text>\n";
    }
    for (int i = 0; i < T; ++i)
      for (int j = 0; j <= i; ++j) {
        const double v = std::clamp(w[static_cast<size_t>(i * T + j)], 0.0, 1.0);
        char fill[32];
        std::snprintf(fill, sizeof fill, "rgb(%d,%d,%d)", static_cast<int>(255 - 225 * v), static_cast<int>(255 - 190 * v),
                      static_cast<int>(255 - 80 * v));
        svg += "<rect x=\"" + std::to_string(x0 + j * cell) + "\" y=\"" + std::to_string(y0 + i * cell) + "\" width=\"" +
               std::to_string(cell) + "\" height=\"" + std::to_string(cell) + "\" fill=\"" + fill + "\"/>\n";
      }
  }
  return svg + "</svg>\n";
}

/// Per-character Integrated Gradients of the character GPT that `make demo-gpt` writes to `dir`,
/// through the token embeddings (the function explained maps embeddings [1, T, C] to logits; the
/// baseline is all-zero embeddings, positions kept): the score is the log-probability of `text`'s last
/// character given the ones before it, each character's attribution the sum over its embedding.
/// Writes <out>/char_gpt_ig.svg; returns the JSON report, or null when the model is absent.
nlohmann::json explain_gpt(const fs::path& dir, const fs::path& out, const std::string& text) {
  const fs::path model_path = dir / "model.safetensors", vocab_path = dir / "vocab.json", log_path = dir / "log.json";
  if (!fs::exists(model_path) || !fs::exists(vocab_path) || !fs::exists(log_path)) {
    std::cout << "char GPT: no model in " << dir.string() << " (make demo-gpt writes it); per-character IG skipped\n";
    return nullptr;
  }
  const auto tokenizer = datasets::CharTokenizer::load(vocab_path.string());
  std::ifstream log_file(log_path);
  const nlohmann::json config = nlohmann::json::parse(log_file).at("config");
  nn::GPT gpt(nn::GPTConfig{.vocab_size = tokenizer.vocab_size(),
                            .block_size = config.at("block_size").get<int64_t>(),
                            .n_layer = config.at("n_layer").get<int64_t>(),
                            .n_head = config.at("n_head").get<int64_t>(),
                            .n_embd = config.at("n_embd").get<int64_t>(),
                            .dropout = 0.0,
                            .bias = true});
  nn::load(gpt, model_path.string());
  gpt.eval();

  const std::string context = text.substr(0, text.size() - 1);
  const std::vector<int64_t> ids = tokenizer.encode_ids(context);
  const int64_t next = tokenizer.encode_ids(text.substr(text.size() - 1)).at(0), T = static_cast<int64_t>(ids.size());
  Tensor embeddings;
  {
    NoGradGuard off;
    embeddings = gpt.wte->forward(index_tensor(ids, {1, T}));  // [1, T, C]
  }
  nn::Forward from_embeddings = [&](const Tensor& e) {
    Tensor x = gpt.wpe->forward(e);
    for (auto& block : gpt.blocks) x = block->forward(x);
    return gpt.lm_head->forward(gpt.ln_f->forward(x));  // [B, T, V]
  };
  const auto target = nn::Target::custom(
      [&](const Tensor& logits, const Tensor& sample) {
        const int64_t rows = logits.size(0), V = logits.size(2);
        Tensor last = reshape(slice(log_softmax(logits, -1), 1, T - 1, T), {rows, V});
        return reshape(
            gather(last, 1, index_tensor(std::vector<int64_t>(static_cast<size_t>(sample.numel()), next), {rows, 1})),
            {rows});
      },
      "log-probability of the next character");
  auto ig = nn::integrated_gradients(from_embeddings, embeddings, target, nn::IntegratedGradientsOptions().steps(64));
  std::vector<double> per_char;
  {
    NoGradGuard off;
    per_char = sum(ig.attributions, {2}).to_vector();  // [1, T]
  }

  double scale = 1e-12;
  for (double v : per_char) scale = std::max(scale, std::abs(v));
  const int cell_w = 16, cell_h = 26, width = cell_w * static_cast<int>(T) + 20 + cell_w;
  std::string svg =
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
      "\" height=\"90\" font-family=\"monospace\" font-size=\"15\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"10\" y=\"18\" font-size=\"12\">Integrated Gradients (64 steps, zero embeddings) of log p('" +
      svg_text(text.back()) + "' | context): red raises it, blue lowers it</text>\n";
  for (int64_t t = 0; t < T; ++t) {
    const auto c = diverging(per_char[static_cast<size_t>(t)] / scale);
    char fill[32];
    std::snprintf(fill, sizeof fill, "rgb(%d,%d,%d)", static_cast<int>(c[0]), static_cast<int>(c[1]),
                  static_cast<int>(c[2]));
    const int x = 10 + cell_w * static_cast<int>(t);
    svg += "<rect x=\"" + std::to_string(x) + "\" y=\"30\" width=\"" + std::to_string(cell_w) + "\" height=\"" +
           std::to_string(cell_h) + "\" fill=\"" + fill + "\"/><text x=\"" + std::to_string(x + 4) + "\" y=\"48\">" +
           svg_text(context[static_cast<size_t>(t)]) + "</text>\n";
  }
  svg += "<text x=\"" + std::to_string(10 + cell_w * static_cast<int>(T)) + "\" y=\"48\" fill=\"#888\">" +
         svg_text(text.back()) + "</text>\n";
  const auto& c = ig.completeness.at(0);
  svg += "<text x=\"10\" y=\"78\" font-size=\"12\">log p = " + std::to_string(ig.output.to_vector()[0]) +
         ", baseline " + std::to_string(ig.baseline_output.to_vector()[0]) + ", completeness error " +
         (c.relative_error ? std::to_string(*c.relative_error) : std::string("undefined")) + "</text>\n</svg>\n";
  const std::string svg_path = (out / "char_gpt_ig.svg").string();
  std::ofstream(svg_path) << svg;
  std::cout << "char GPT: wrote " << svg_path << "; IG completeness: relative error "
            << (c.relative_error ? std::to_string(*c.relative_error) : std::string("undefined")) << "\n";
  const std::string maps_path = (out / "char_gpt_attention.svg").string();
  {
    std::vector<Tensor> maps = gpt.attention_maps(index_tensor(ids, {1, T}));
    std::ofstream(maps_path) << attention_svg(maps, context);
  }
  std::cout << "char GPT: wrote " << maps_path << " (attention of every block, averaged over the heads)\n";
  return {{"svg", svg_path},
          {"attention_svg", maps_path},
          {"text", text},
          {"log_probability", ig.output.to_vector()[0]},
          {"baseline_log_probability", ig.baseline_output.to_vector()[0]},
          {"attribution_per_character", per_char},
          {"attribution_sum", c.attribution_sum},
          {"relative_error", c.relative_error ? nlohmann::json(*c.relative_error) : nlohmann::json(nullptr)}};
}

}  // namespace

int main(int argc, char** argv) {
  auto args = examples::parse_args(
      argc, argv, "Saliency, SmoothGrad and Integrated Gradients maps of the seed MLP and the small CNN",
      {.dataset = "mnist", .epochs = 2, .batch_size = 32, .lr = 1e-3});
  return examples::run(args, [&] {
    auto [train, test] = examples::load_data(args);
    auto [x, classes] = one_per_class(*test);
    fs::create_directories(args.out);

    auto mlp = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
    load_or_train(*mlp, {(fs::path(args.out) / "mlp.safetensors").string(), "out/mnist_mlp/model.safetensors"}, args,
                  train, "seed MLP");
    auto cnn = std::make_shared<nn::Sequential>(nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(),
                                                nn::MaxPool2d(2), nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)),
                                                nn::ReLU(), nn::MaxPool2d(2), nn::Flatten(),
                                                nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
    load_or_train(*cnn, {(fs::path(args.out) / "cnn.safetensors").string()}, args, train, "CNN");

    nlohmann::json report;
    std::cout << "seed MLP:\n";
    report["mlp"] = explain_model(mlp, x, classes, (fs::path(args.out) / "mlp.png").string(), args.seed);
    std::cout << "CNN:\n";
    report["cnn"] = explain_model(cnn, x, classes, (fs::path(args.out) / "cnn.png").string(), args.seed);
    report["char_gpt"] = explain_gpt("out/char_gpt", args.out, "The early bird gets the worm");
    const std::string json_path = (fs::path(args.out) / "completeness.json").string();
    std::ofstream(json_path) << report.dump(2) << "\n";
    std::cout << "Wrote " << json_path << std::endl;
  });
}
