// A character-level GPT (issue 10): nanoGPT's CPU "baby GPT" — 4 layers, 4 heads, 128-wide
// embeddings, context 64, batch 12, dropout 0, AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1 on
// matrices only), 100 warm-up iterations then cosine decay to 1e-4, gradient clipping at 1.0 — on
// Debian's fortunes (or --text PATH). Every --eval-every iterations it prints the mean train and
// validation loss of --eval-batches batches; at the end it writes into --out the weights
// (model.safetensors, PyTorch's names), the vocabulary (vocab.json), log.json, loss.svg, and
// samples --sample characters from --prompt with the key/value cache.
//
//   make demo-gpt                          trains 2,000 iterations on fortunes and samples
//   build/examples/char_gpt --iters 0 --resume out/char_gpt/run_state.safetensors --sample 300
//
// scripts/torch_gpt.py is the same run in PyTorch; bench/compare/driver.py runs both (--bench).
//
// Under `mpirun -np N` the model trains data-parallel (distributed::DistributedDataParallel): every
// rank draws the same global batch of N × --batch-size windows from the same stream and trains on
// its slice of it, so N ranks take exactly the steps of one process with N × --batch-size, and a
// resumed run continues every rank's stream. Rank 0 evaluates, prints and writes the outputs.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>

#include "autograd/autograd.hpp"
#include "datasets/text.hpp"
#include "distributed/comm.hpp"
#include "examples/common.hpp"
#include "nn/nn.hpp"
#include "nn/serialize.hpp"
#include "nn/transformer.hpp"
#include "optim/optim.hpp"
#include "train/run_state.hpp"

namespace tg = tapegrad;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

struct Flags {
  int64_t iters = 2000, eval_every = 250, eval_batches = 20, batch_size = 12, block_size = 64;
  int64_t n_layer = 4, n_head = 4, n_embd = 128, warmup = 100;
  double dropout = 0.0, lr = 1e-3, min_lr = 1e-4, weight_decay = 0.1, clip = 1.0;
  std::string text = tg::datasets::kFortunesDir, out = "out/char_gpt", state, resume;
  int threads = 1;
  uint64_t seed = 0;
  bool profile = false, quiet = false, bench = false, recompute = false;
  int profile_depth = -1;
  int64_t sample = 500, top_k = 10;
  double temperature = 0.8;
  std::string prompt = "\n";
};

/// Linear warm-up, then cosine decay to min_lr at the last iteration (nanoGPT's get_lr; the same
/// formula as scripts/torch_gpt.py's lr_at).
double lr_at(const Flags& f, int64_t it) {
  if (it < f.warmup) return f.lr * static_cast<double>(it + 1) / static_cast<double>(f.warmup + 1);
  if (it >= f.iters) return f.min_lr;
  const double ratio = static_cast<double>(it - f.warmup) / static_cast<double>(f.iters - f.warmup);
  return f.min_lr + 0.5 * (1.0 + std::cos(M_PI * ratio)) * (f.lr - f.min_lr);
}

/// Mean loss of `batches` random batches of `batch_size` windows of each split, in eval mode and
/// without recording.
std::pair<double, double> estimate_loss(tg::nn::GPT& model, const tg::datasets::TextDataset& data, const Flags& f,
                                        int64_t batch_size, tg::Generator& gen) {
  tg::NoGradGuard no_grad;
  model.eval();
  double sums[2] = {0, 0};
  const tg::datasets::TextSplit splits[2] = {tg::datasets::TextSplit::train, tg::datasets::TextSplit::val};
  for (int s = 0; s < 2; ++s)
    for (int64_t b = 0; b < f.eval_batches; ++b) {
      auto batch = data.get_batch(splits[s], batch_size, f.block_size, gen);
      sums[s] += tg::nn::GPT::loss(model(batch.x), batch.y).item();
    }
  model.train();
  return {sums[0] / static_cast<double>(f.eval_batches), sums[1] / static_cast<double>(f.eval_batches)};
}

/// "[#####.....]  120/250  loss 2.314  53.1 ms/it" on one terminal line.
void progress(int64_t done, int64_t total, double loss, double ms) {
  const int width = 30;
  const int filled = static_cast<int>(width * done / std::max<int64_t>(total, 1));
  std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, '.') << "] " << std::setw(5) << done
            << '/' << total << "  loss " << std::fixed << std::setprecision(3) << loss << "  " << std::setprecision(1)
            << ms << " ms/it " << std::defaultfloat << std::flush;
}

/// Tokens per second of generating `n` tokens after `prompt`, with or without the cache.
double tokens_per_second(tg::nn::GPT& model, const tg::Tensor& prompt, int64_t n, bool cache, uint64_t seed) {
  tg::Generator gen(seed);
  const auto start = Clock::now();
  model.generate(prompt, n, 1.0, 0, gen, cache);
  return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
}

/// CPU time of the calling thread in ms: beside the wall time, a step's cost that a busy shared
/// machine inflates less (time the thread waits for a core is not counted).
double thread_cpu_ms() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) * 1e-6;
}

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

void train(const Flags& f) {
  const int64_t rank = tg::distributed::rank(), world = tg::distributed::world_size();
  const bool lead = rank == 0;  // evaluates, prints and writes; every rank trains
  tg::manual_seed(f.seed);
  tg::Generator data_gen(f.seed + 1), eval_gen(f.seed + 2), sample_gen(f.seed + 3);
  auto corpus = tg::datasets::load_text_corpus(f.text);
  const auto& tokenizer = corpus.tokenizer;
  if (!f.quiet)
    std::cout << "corpus: " << corpus.path << " (" << corpus.bytes << " bytes, " << corpus.data.size()
              << " characters, vocabulary " << tokenizer.vocab_size() << "; train "
              << corpus.data.split_size(tg::datasets::TextSplit::train) << ", validation "
              << corpus.data.split_size(tg::datasets::TextSplit::val) << ")\n";

  tg::nn::GPTConfig config{.vocab_size = tokenizer.vocab_size(),
                           .block_size = f.block_size,
                           .n_layer = f.n_layer,
                           .n_head = f.n_head,
                           .n_embd = f.n_embd,
                           .dropout = f.dropout,
                           .bias = true};
  auto model_ptr = std::make_shared<tg::nn::GPT>(config);
  tg::nn::GPT& model = *model_ptr;
  model.set_checkpointing(f.recompute);  // same losses, less memory, about one more forward per step
  // nanoGPT's two groups: weight decay on the matrices and embeddings, none on biases and norms.
  std::vector<tg::Tensor> decay, no_decay;
  for (const auto& [name, p] : model.named_parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  tg::optim::AdamW optimizer(decay, tg::optim::AdamOptions(f.lr).betas(0.9, 0.99).weight_decay(f.weight_decay));
  optimizer.add_param_group(no_decay, tg::optim::AdamOptions(f.lr).betas(0.9, 0.99).weight_decay(0.0));

  fs::create_directories(f.out);
  const std::string state_path = f.state.empty() ? f.out + "/run_state.safetensors" : f.state;
  tg::train::History history;
  int64_t start_iter = 0;
  if (!f.resume.empty()) {
    // The vocabulary lives beside the run state; a different corpus would silently scramble tokens.
    const fs::path vocab = fs::path(f.resume).parent_path() / "vocab.json";
    tg::datasets::CharTokenizer::load(vocab.string()).check_matches(tokenizer, "resuming from " + f.resume);
    auto state = tg::train::load_run_state(f.resume);
    model.load_state_dict(state.model);
    optimizer.load_state_dict(state.optimizer);
    for (auto [name, gen] : {std::pair{"data", &data_gen}, {"eval", &eval_gen}, {"default", &tg::default_generator()}})
      if (state.rng.count(name)) gen->set_state(state.rng.at(name));
    history = state.history;
    start_iter = state.global_step;
    if (!f.quiet) std::cout << "resumed from " << f.resume << " at iteration " << start_iter << "\n";
  }
  // Under mpirun: rank 0's weights broadcast, gradients averaged over the ranks in backward.
  std::shared_ptr<tg::nn::UnaryModule> trained = tg::examples::data_parallel(model_ptr);
  if (lead) tokenizer.save(f.out + "/vocab.json");
  if (!f.quiet)
    std::cout << "model: " << f.n_layer << " layers, " << f.n_head << " heads, width " << f.n_embd << ", context "
              << f.block_size << ", " <<
        [&] {
          int64_t n = 0;
          for (const auto& p : model.parameters()) n += p.numel();
          return n;
        }() << " parameters\n";

  const bool show_progress = !f.quiet && isatty(STDERR_FILENO);  // a bar per iteration only on a terminal
  auto save = [&](int64_t iter) {
    if (f.state == "none" || !lead) return;
    tg::train::RunState state{
        .model = model.state_dict(),
        .optimizer = optimizer.state_dict(),
        .epoch = static_cast<int64_t>(history.epochs.size()),  // the evaluations logged
        .global_step = iter,
        .rng = {{"data", data_gen.state()}, {"eval", eval_gen.state()}, {"default", tg::default_generator().state()}},
        .history = history};
    tg::train::save_run_state(state, state_path);
  };
  auto evaluate = [&](int64_t iter, double seconds) {
    // The global batch: N ranks report what one process with N × --batch-size would.
    auto [train_loss, val_loss] = estimate_loss(model, corpus.data, f, f.batch_size * world, eval_gen);
    if (!f.quiet)
      std::cerr << (show_progress ? "\r" + std::string(70, ' ') + "\r" : std::string()) << "iter " << std::setw(5)
                << iter << ": train loss " << std::fixed << std::setprecision(4) << train_loss << ", val loss "
                << val_loss << std::defaultfloat << "\n";
    history.epochs.push_back(
        {.epoch = iter, .seconds = seconds, .steps = iter, .values = {{"loss", train_loss}, {"val_loss", val_loss}}});
    history.steps = iter;
  };

  std::vector<double> step_ms, step_cpu_ms;
  double last_loss = NAN;
  auto segment_start = Clock::now();
  if (start_iter == 0 && f.iters > 0 && lead) evaluate(0, 0.0);
  for (int64_t it = start_iter; it < f.iters; ++it) {
    const auto t0 = Clock::now();
    const double cpu0 = thread_cpu_ms();
    optimizer.set_lr(lr_at(f, it));
    auto batch = corpus.data.get_batch(tg::datasets::TextSplit::train, f.batch_size * world, f.block_size, data_gen);
    if (world > 1) {  // this rank's slice of the global batch
      batch.x = tg::slice(batch.x, 0, rank * f.batch_size, (rank + 1) * f.batch_size);
      batch.y = tg::slice(batch.y, 0, rank * f.batch_size, (rank + 1) * f.batch_size);
    }
    tg::Tensor loss = tg::nn::GPT::loss((*trained)(batch.x), batch.y);  // operator(): the profiler's module scopes
    optimizer.zero_grad();
    loss.backward();
    tg::optim::clip_grad_norm_(model.parameters(), f.clip);
    optimizer.step();
    last_loss = loss.item();
    step_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    step_cpu_ms.push_back(thread_cpu_ms() - cpu0);
    const int64_t done = it + 1;
    if (show_progress) progress((done - 1) % f.eval_every + 1, f.eval_every, last_loss, step_ms.back());
    if ((done % f.eval_every == 0 || done == f.iters) && lead) {
      evaluate(done, std::chrono::duration<double>(Clock::now() - segment_start).count());
      save(done);
      segment_start = Clock::now();
    }
  }
  history.stop_reason = "completed";
  if (!lead) return;  // the outputs are rank 0's (every rank holds the same weights)

  // Outputs: weights with PyTorch's names, the vocabulary, the curves, the log and a sample.
  tg::nn::save_safetensors(model.state_dict(), f.out + "/model.safetensors");
  nlohmann::json log;
  log["config"] = {{"vocab_size", config.vocab_size},
                   {"block_size", config.block_size},
                   {"n_layer", config.n_layer},
                   {"n_head", config.n_head},
                   {"n_embd", config.n_embd},
                   {"dropout", config.dropout},
                   {"batch_size", f.batch_size},
                   {"iters", f.iters},
                   {"lr", f.lr},
                   {"min_lr", f.min_lr},
                   {"warmup", f.warmup},
                   {"weight_decay", f.weight_decay},
                   {"clip", f.clip},
                   {"seed", f.seed},
                   {"text", corpus.path}};
  log["history"] = nlohmann::json::parse(history.to_json());
  const double ms_per_iter = median(step_ms);
  log["ms_per_iter_median"] = ms_per_iter;
  nlohmann::json losses = nlohmann::json::object();  // the last evaluation's, also printed by --bench
  if (!history.epochs.empty()) {
    losses = {{"train_loss", history.epochs.back().get("loss")}, {"val_loss", history.epochs.back().get("val_loss")}};
    log.update(losses);
    std::ofstream svg(f.out + "/loss.svg");
    svg << tg::examples::curves_svg(history, "char_gpt on " + fs::path(corpus.path).filename().string(),
                                    {.second_metric = "", .x_label = "iteration"});
  }

  model.eval();
  if (f.sample > 0) {
    tg::Tensor prompt = tokenizer.encode(f.prompt).reshape({1, -1});
    tg::Tensor out = model.generate(prompt, f.sample, f.temperature, f.top_k, sample_gen, true);
    const std::string text = tokenizer.decode(out);
    log["sample"] = text;
    if (!f.quiet)
      std::cout << "\n---- sample (temperature " << f.temperature << ", top-k " << f.top_k << ") ----\n"
                << text << "\n----\n";
    // The cache's worth: the same tokens with and without it (both within the context window).
    const int64_t n = std::min<int64_t>(f.block_size - prompt.size(1), 200);
    if (n > 0) {
      const double with = tokens_per_second(model, prompt, n, true, f.seed);
      const double without = tokens_per_second(model, prompt, n, false, f.seed);
      log["tokens_per_second"] = {{"with_cache", with}, {"without_cache", without}, {"tokens", n}};
      if (!f.quiet)
        std::cout << "generation: " << std::fixed << std::setprecision(0) << with
                  << " tokens/s with the key/value cache, " << without << " without (" << n << " tokens)\n"
                  << std::defaultfloat;
    }
  }
  std::ofstream(f.out + "/log.json") << log.dump(2) << "\n";
  if (!f.quiet)
    std::cout << "median " << std::fixed << std::setprecision(1) << ms_per_iter << " ms/iteration; wrote " << f.out
              << "/{model.safetensors, vocab.json, log.json, loss.svg}\n"
              << std::defaultfloat;
  if (f.bench) {
    // cpu_ms_per_iter: the main thread's CPU time (with --threads 1 the whole step's work)
    nlohmann::json b = {{"ms_per_iter", ms_per_iter}, {"cpu_ms_per_iter", median(step_cpu_ms)}, {"iters", f.iters}};
    b.update(losses);
    std::cout << b.dump() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags f;
  CLI::App app("Trains a character-level GPT (nanoGPT's baby GPT) and samples from it.", "char_gpt");
  app.option_defaults()->always_capture_default();
  app.add_option("--iters", f.iters, "Training iterations (0: sample from --resume only)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--eval-every", f.eval_every, "Iterations between loss estimates")->check(CLI::PositiveNumber);
  app.add_option("--eval-batches", f.eval_batches, "Batches per split in each estimate")->check(CLI::PositiveNumber);
  app.add_option("--batch-size", f.batch_size, "Sequences per step")->check(CLI::PositiveNumber);
  app.add_option("--block-size", f.block_size, "Context length")->check(CLI::PositiveNumber);
  app.add_option("--n-layer", f.n_layer, "Transformer blocks")->check(CLI::PositiveNumber);
  app.add_option("--n-head", f.n_head, "Attention heads")->check(CLI::PositiveNumber);
  app.add_option("--n-embd", f.n_embd, "Embedding width")->check(CLI::PositiveNumber);
  app.add_option("--dropout", f.dropout, "Dropout probability")->check(CLI::Range(0.0, 0.99));
  app.add_option("--lr", f.lr, "Peak learning rate")->check(CLI::PositiveNumber);
  app.add_option("--min-lr", f.min_lr, "Learning rate at the end of the cosine")->check(CLI::NonNegativeNumber);
  app.add_option("--warmup", f.warmup, "Warm-up iterations")->check(CLI::NonNegativeNumber);
  app.add_option("--text", f.text, "A UTF-8 text file or a folder of them (default: Debian's fortunes)");
  f.threads = tg::get_num_threads();  // TAPEGRAD_NUM_THREADS, else 1
  app.add_option("--threads", f.threads,
                 "Intra-op threads for tapegrad's kernels and OpenBLAS (default: TAPEGRAD_NUM_THREADS, else 1)")
      ->check(CLI::Range(1, 256));
  app.add_option("--seed", f.seed, "Seed of initialisation, batches and sampling");
  app.add_option("--out", f.out, "Output directory");
  app.add_option("--state", f.state,
                 "The run's state (model, optimizer, RNG states, history), written at every evaluation; default "
                 "<out>/run_state.safetensors; none: never");
  app.add_option("--resume", f.resume, "A --state file to continue from (its folder's vocab.json must match the corpus)");
  app.add_flag("--profile", f.profile,
               "Profile of the run: tables by op and by module, <out>/profile.json and the timeline <out>/trace.json");
  app.add_option("--profile-depth", f.profile_depth, "Levels of the by-module profile table (-1: all)")
      ->check(CLI::Range(-1, 100));
  app.add_flag("--recompute", f.recompute,
               "Activation checkpointing of the blocks: their activations are recomputed in backward instead of "
               "kept (same results, less memory, about one extra forward per step)");
  app.add_option("--sample", f.sample, "Characters to generate at the end")->check(CLI::NonNegativeNumber);
  app.add_option("--prompt", f.prompt, "Text the sample starts from");
  app.add_option("--temperature", f.temperature, "Sampling temperature (0: greedy)")->check(CLI::NonNegativeNumber);
  app.add_option("--top-k", f.top_k, "Sample among the k most likely characters (0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--quiet", f.quiet, "Only errors (and --bench's JSON)");
  app.add_flag("--bench", f.bench, "Print one JSON line with the median ms per iteration (wall and the main thread's CPU time) and the losses");
  CLI11_PARSE(app, argc, argv);
  tg::set_num_threads(f.threads);
  tg::examples::Args common;
  common.session = std::make_shared<tg::distributed::Session>(&argc, &argv);  // MPI under mpirun
  if (tg::distributed::rank() != 0) f.quiet = true;                           // one log: rank 0's
  common.program = "char_gpt";
  common.out = f.out;
  common.profile = f.profile;
  common.profile_depth = f.profile_depth;
  return tg::examples::run(common, [&] { train(f); });
}
