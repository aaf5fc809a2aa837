// Run states: what they hold, atomic saving under an injected write failure, and resuming a run
// bitwise.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "nn/serialize.hpp"
#include "optim/adam.hpp"
#include "tests/reliability/toy.hpp"
#include "train/run_state.hpp"

using namespace tapegrad;
namespace fs = std::filesystem;

namespace {
// A fresh directory per test case, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("tapegrad_ckpt_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
  size_t files() const { return static_cast<size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator())); }
};

// The same run set-up every time: model and optimizer built fresh from `init_seed`, dropout drawing
// from `dropout_gen` (declared to fit as "dropout").
// Callbacks: none, or ones that keep state (early stopping with restored weights, a step schedule,
// a convergence check), or a plateau schedule.
enum class Callbacks { none, stateful, plateau };

struct Setup {
  Generator dropout_gen{77};
  std::shared_ptr<nn::Sequential> model;
  std::unique_ptr<optim::Adam> adam;
  std::vector<std::shared_ptr<train::Callback>> callbacks;
  std::shared_ptr<train::EarlyStopping> early;
  explicit Setup(uint64_t init_seed, Callbacks with = Callbacks::none) {
    manual_seed(init_seed);
    model = testing::mlp(dropout_gen);
    adam = std::make_unique<optim::Adam>(model->parameters(), optim::AdamOptions(1e-2));
    if (with == Callbacks::stateful) {
      early = std::make_shared<train::EarlyStopping>(
          train::EarlyStoppingOptions{.monitor = "val_loss", .patience = 1, .min_delta = 0.05, .restore_best = true});
      callbacks = {early,
                   std::make_shared<train::LearningRateScheduler>(std::make_shared<optim::StepLR>(*adam, 2, 0.5)),
                   std::make_shared<train::ConvergenceStop>(1e-12), std::make_shared<train::MaxSteps>(1000)};
    } else if (with == Callbacks::plateau) {
      callbacks = {std::make_shared<train::LearningRateScheduler>(
          std::make_shared<optim::ReduceLROnPlateau>(*adam, optim::ReduceLROnPlateau::Mode::min, 0.5, 0, 0.2), "loss")};
    }
  }
  train::History fit(int64_t epochs, const std::string& ckpt, std::shared_ptr<const train::RunState> resume = nullptr) {
    return train::fit(*model, *adam, testing::ce, testing::blobs(50, 4),
                      {.epochs = epochs, .batch_size = 16, .shuffle = true, .seed = 9, .validation_split = 0.2,
                       .callbacks = callbacks, .quiet = true, .state_path = ckpt, .resume = resume,
                       .generators = {{"dropout", &dropout_gen}}});
  }
};

train::RunState small_run_state(double w) {
  train::RunState c;
  c.model = {{"fc.weight", tensor({w, 2, 3, 4}, {2, 2})}};
  c.optimizer = {{"state.0.step", tensor({7}, {}, DType::f64)}};
  c.epoch = 1;
  c.global_step = 7;
  c.rng = {{"default", Generator(3).state()}};
  train::EpochLog log;
  log.epoch = 1;
  log.steps = 7;
  log.values = {{"loss", 0.1 + w}, {"accuracy", std::nan("")}};
  c.history.epochs = {log};
  c.history.steps = 7;
  return c;
}
}  // namespace

TEST_CASE("a run state round-trips model, optimizer, counters, RNG states and history bitwise") {
  TempDir dir("roundtrip");
  Setup s(1);
  s.fit(2, dir / "run.state");
  train::RunState c = train::load_run_state(dir / "run.state");
  CHECK(c.epoch == 2);
  CHECK(c.global_step == 2 * 8);  // 120 training samples in batches of 16
  CHECK(c.history.epochs.size() == 2);
  CHECK(c.history.epochs[1].has("val_loss"));
  REQUIRE(c.rng.count("default") == 1);
  REQUIRE(c.rng.count("loader") == 1);
  REQUIRE(c.rng.count("dropout") == 1);
  CHECK(c.rng.at("dropout") == s.dropout_gen.state());
  CHECK(c.rng.at("default") == default_generator().state());
  // the model part loads into a module and equals its weights bitwise
  Setup other(2);
  other.model->load_state_dict(c.model);
  CHECK(testing::weight_bytes(*other.model) == testing::weight_bytes(*s.model));
  CHECK(c.optimizer.size() == s.adam->state_dict().size());
  // NaN survives the trip through JSON
  train::save_run_state(small_run_state(1), dir / "small.state");
  train::RunState small = train::load_run_state(dir / "small.state");
  CHECK(std::isnan(small.history.epochs[0].get("accuracy")));
  CHECK(small.history.epochs[0].get("loss") == 1.1);
}

TEST_CASE("a save that fails midway leaves the previous run state intact and loadable") {
  TempDir dir("atomic");
  const std::string path = dir / "run.state";
  train::save_run_state(small_run_state(1), path);
  const auto size = fs::file_size(path);
  // Fail the second save at every stage: before any byte, inside the header length, the JSON
  // header, the tensor data, and one byte short of the end.
  for (int64_t budget : {int64_t{0}, int64_t{3}, int64_t{40}, static_cast<int64_t>(size) - 12, static_cast<int64_t>(size) - 1}) {
    CAPTURE(budget);
    nn::testing::fail_writes_after(budget);
    CHECK_THROWS_WITH_AS(train::save_run_state(small_run_state(5), path),
                         doctest::Contains("No space left on device"), std::runtime_error);
    nn::testing::fail_writes_after(-1);
    train::RunState c = train::load_run_state(path);
    CHECK(c.model[0].second.to_vector()[0] == 1.0);
    CHECK(c.history.epochs[0].get("loss") == doctest::Approx(1.1));
    CHECK(dir.files() == 1);  // the temporary file is gone
  }
  // The message says the old file is untouched.
  nn::testing::fail_writes_after(10);
  CHECK_THROWS_WITH_AS(train::save_run_state(small_run_state(5), path), doctest::Contains("is unchanged"),
                       std::runtime_error);
  nn::testing::fail_writes_after(-1);
  // And without the fault, the same save goes through: the injection was what failed it.
  train::save_run_state(small_run_state(5), path);
  CHECK(train::load_run_state(path).model[0].second.to_vector()[0] == 5.0);
}

TEST_CASE("a save into a directory that does not exist fails and names the temporary file") {
  CHECK_THROWS_WITH_AS(train::save_run_state(small_run_state(1), "/nonexistent-dir/run.state"),
                       doctest::Contains("cannot create the temporary file '/nonexistent-dir/run.state.tmp."),
                       std::runtime_error);
}

TEST_CASE("resuming after epoch k and training to n equals an uninterrupted n-epoch run bitwise") {
  TempDir dir("resume");
  Setup full(1);
  train::History uninterrupted = full.fit(5, dir / "full.state");
  for (int64_t k : {1, 3}) {
    CAPTURE(k);
    Setup first(1);
    first.fit(k, dir / "part.state");  // "crashes" after epoch k
    auto ckpt = std::make_shared<train::RunState>(train::load_run_state(dir / "part.state"));
    REQUIRE(ckpt->epoch == k);
    // A new process: other weights, other generator states until the run state restores them.
    Setup second(12345);
    second.dropout_gen.seed(999);
    train::History resumed = second.fit(5, dir / "part.state", ckpt);
    CHECK(resumed.epochs.size() == 5);
    CHECK(testing::history_bytes(resumed) == testing::history_bytes(uninterrupted));
    CHECK(testing::weight_bytes(*second.model) == testing::weight_bytes(*full.model));
    CHECK(train::load_run_state(dir / "part.state").epoch == 5);
  }
}

TEST_CASE("resuming restores the callbacks' state: early stopping, schedules, convergence") {
  TempDir dir("callbacks");
  for (Callbacks with : {Callbacks::stateful, Callbacks::plateau}) {
    CAPTURE(static_cast<int>(with));
    Setup full(1, with);
    train::History uninterrupted = full.fit(8, dir / "full.state");
    const double lr_full = full.adam->lr();
    // the scenario is exercised: early stopping ends the stateful run (epoch 5, best 4) with its weights restored
    if (with == Callbacks::stateful) CHECK(uninterrupted.stop_reason.find("early stopping") == 0);
    if (with == Callbacks::stateful) CHECK(uninterrupted.notes.size() == 1);
    CHECK(lr_full < 1e-2);  // the schedule did change the rate
    // k = 5: the stateful run's own early stop happens at epoch 5, so that run state is a stopped run
    for (int64_t k : {1, 2, 3, 5}) {
      CAPTURE(k);
      Setup first(1, with);
      first.fit(k, dir / "part.state");
      auto ckpt = std::make_shared<train::RunState>(train::load_run_state(dir / "part.state"));
      CHECK(!ckpt->callbacks.empty());
      Setup second(12345, with);
      train::History resumed = second.fit(8, dir / "part.state", ckpt);
      CHECK(testing::history_bytes(resumed) == testing::history_bytes(uninterrupted));
      CHECK(resumed.stop_reason == uninterrupted.stop_reason);
      CHECK(resumed.notes == uninterrupted.notes);
      CHECK(testing::weight_bytes(*second.model) == testing::weight_bytes(*full.model));
      CHECK(second.adam->lr() == lr_full);
      if (with == Callbacks::stateful) CHECK(second.early->best_epoch() == full.early->best_epoch());
    }
  }
  // Control: the same resume with the scheduler's epoch reset, as a run that did not keep it would
  // be, ends elsewhere.
  Setup full(1, Callbacks::stateful);
  train::History uninterrupted = full.fit(8, dir / "full.state");
  Setup first(1, Callbacks::stateful);
  first.fit(3, dir / "part.state");
  auto reset = std::make_shared<train::RunState>(train::load_run_state(dir / "part.state"));
  bool reset_done = false;
  for (auto& [key, t] : reset->callbacks)
    if (key == "1.LearningRateScheduler.last_epoch") t = scalar(0, DType::f64), reset_done = true;
  REQUIRE(reset_done);
  Setup second(1, Callbacks::stateful);
  CHECK(testing::history_bytes(second.fit(8, dir / "reset.state", reset)) != testing::history_bytes(uninterrupted));
}

TEST_CASE("resuming is sensitive to every RNG state: a wrong shuffling or dropout state diverges") {
  TempDir dir("sensitive");
  Setup full(1);
  train::History uninterrupted = full.fit(3, dir / "full.state");
  Setup first(1);
  first.fit(1, dir / "part.state");
  const train::RunState good = train::load_run_state(dir / "part.state");
  for (const char* name : {"loader", "dropout", "default"}) {
    CAPTURE(name);
    auto bad = std::make_shared<train::RunState>(good);
    bad->rng[name] = Generator(4242).state();
    Setup second(1);
    train::History resumed = second.fit(3, dir / "bad.state", bad);
    if (std::string(name) == "default") {
      // nothing in this run draws from the default generator after initialisation
      CHECK(testing::history_bytes(resumed) == testing::history_bytes(uninterrupted));
    } else {
      CHECK(testing::history_bytes(resumed) != testing::history_bytes(uninterrupted));
    }
  }
}

TEST_CASE("resume and run state errors name the problem") {
  TempDir dir("errors");
  Setup s(1);
  s.fit(2, dir / "run.state");
  auto ckpt = std::make_shared<train::RunState>(train::load_run_state(dir / "run.state"));
  Setup t(1);
  CHECK_THROWS_WITH_AS(t.fit(1, "", ckpt), doctest::Contains("at epoch 2, past epochs = 1"), std::invalid_argument);
  auto no_dropout = std::make_shared<train::RunState>(*ckpt);
  no_dropout->rng.erase("dropout");
  CHECK_THROWS_WITH_AS(t.fit(3, "", no_dropout), doctest::Contains("no state of generator 'dropout'"),
                       std::invalid_argument);
  // a run state of a run with other callbacks is refused before anything is loaded
  Setup with_callbacks(1, Callbacks::stateful);
  const auto weights_before = testing::weight_bytes(*with_callbacks.model);
  CHECK_THROWS_WITH_AS(with_callbacks.fit(3, "", ckpt),
                       doctest::Contains("written with other callbacks (a different number): run state [], run "
                                         "[EarlyStopping, LearningRateScheduler, ConvergenceStop, MaxSteps]"),
                       std::invalid_argument);
  CHECK(testing::weight_bytes(*with_callbacks.model) == weights_before);
  Setup stateful(1, Callbacks::stateful);
  stateful.fit(1, dir / "stateful.state");
  auto swapped = std::make_shared<train::RunState>(train::load_run_state(dir / "stateful.state"));
  Setup reordered(1, Callbacks::stateful);
  std::swap(reordered.callbacks[2], reordered.callbacks[3]);
  CHECK_THROWS_WITH_AS(reordered.fit(3, "", swapped), doctest::Contains("callback 2 differs"), std::invalid_argument);
  // a callback's state with a key it does not know
  auto unknown = std::make_shared<train::RunState>(*swapped);
  unknown->callbacks.emplace_back("2.ConvergenceStop.surprise", scalar(1.0, DType::f64));
  Setup again(1, Callbacks::stateful);
  CHECK_THROWS_WITH_AS(again.fit(3, "", unknown), doctest::Contains("ConvergenceStop::load_state_dict: unknown state 'surprise'"),
                       std::invalid_argument);
  // weights alone are not a run state
  nn::save(*s.model, dir / "weights.safetensors");
  CHECK_THROWS_WITH_AS(train::load_run_state(dir / "weights.safetensors"), doctest::Contains("not a run state"),
                       std::runtime_error);
  // a corrupt history is reported, not trusted
  nn::save_safetensors({}, dir / "bad.state",
                       {{"tapegrad.checkpoint", "1"}, {"epoch", "1"}, {"global_step", "x"}, {"history", "{}"}});
  CHECK_THROWS_WITH_AS(train::load_run_state(dir / "bad.state"), doctest::Contains("\"global_step\" = 'x' is not a count"),
                       std::runtime_error);
  // the model still trains after these errors
  CHECK(t.fit(1, "").epochs.size() == 1);
}

namespace {
// Every byte of a state dict, names included: two equal snapshots mean nothing changed.
std::vector<unsigned char> state_bytes(const nn::NamedTensors& state) {
  std::vector<unsigned char> out;
  for (const auto& [name, t] : state) {
    out.insert(out.end(), name.begin(), name.end());
    const Tensor& c = t;
    const auto* p = reinterpret_cast<const unsigned char*>(c.data<char>());
    out.insert(out.end(), p, p + c.numel() * static_cast<int64_t>(dtype_size(c.dtype())));
  }
  return out;
}
// The run's whole mutable state: model, optimizer (options included), learning rate, callbacks, RNGs.
std::vector<unsigned char> run_state(Setup& s) {
  auto out = testing::weight_bytes(*s.model);
  for (const auto& part : {s.adam->state_dict(), nn::NamedTensors{{"lr", scalar(s.adam->lr(), DType::f64)}}}) {
    auto b = state_bytes(part);
    out.insert(out.end(), b.begin(), b.end());
  }
  for (const auto& cb : s.callbacks) {
    auto b = state_bytes(cb->state_dict());
    out.insert(out.end(), b.begin(), b.end());
  }
  for (const std::string& g : {default_generator().state(), s.dropout_gen.state()}) out.insert(out.end(), g.begin(), g.end());
  return out;
}
void set_entry(nn::NamedTensors& state, const std::string& key, double v) {
  bool found = false;
  for (auto& [name, t] : state)
    if (name == key) t = scalar(v, DType::f64), found = true;
  REQUIRE_MESSAGE(found, key);
}
}  // namespace

TEST_CASE("a resume with invalid optimizer options or state is refused and changes nothing") {
  TempDir dir("invalid_resume");
  Setup first(1, Callbacks::stateful);
  first.fit(2, dir / "run.state");
  const train::RunState good = train::load_run_state(dir / "run.state");
  struct Case {
    const char* key;
    double value;
    const char* message;
  };
  for (const Case& c : {Case{"param_groups.0.lr", std::nan(""), "lr must be finite"},
                        Case{"param_groups.0.lr", -1e-3, "lr must be >= 0"},
                        Case{"param_groups.0.beta1", 2, "betas must be in [0, 1)"},
                        Case{"param_groups.0.eps", -1, "eps must be >= 0"},
                        Case{"param_groups.0.weight_decay", INFINITY, "weight_decay must be finite"},
                        Case{"param_groups.0.amsgrad", 0.5, "is a flag: 0 or 1"},
                        Case{"state.0.step", -5, "'state.0.step' must be a whole number >= 0"},
                        Case{"state.1.step", 2.5, "must be a whole number"}}) {
    CAPTURE(c.key);
    CAPTURE(c.value);
    auto bad = std::make_shared<train::RunState>(good);
    set_entry(bad->optimizer, c.key, c.value);
    // Through the optimizer directly, and through fit's resume.
    Setup s(5, Callbacks::stateful);
    const auto before = run_state(s);
    CHECK_THROWS_WITH_AS(s.adam->load_state_dict(bad->optimizer), doctest::Contains(c.message), std::invalid_argument);
    CHECK(run_state(s) == before);
    CHECK_THROWS_WITH_AS(s.fit(4, "", bad), doctest::Contains(c.message), std::invalid_argument);
    CHECK(run_state(s) == before);
  }
  // Non-finite moments are refused too.
  auto nan_moment = std::make_shared<train::RunState>(good);
  for (auto& [name, t] : nan_moment->optimizer)
    if (name == "state.0.exp_avg_sq") t = full(t.shape(), std::nan(""), t.dtype());
  Setup s(5, Callbacks::stateful);
  CHECK_THROWS_WITH_AS(s.fit(4, "", nan_moment), doctest::Contains("'state.0.exp_avg_sq' holds values that are not finite"),
                       std::invalid_argument);
  // Control: the valid run state resumes.
  Setup ok(5, Callbacks::stateful);
  CHECK(ok.fit(4, "", std::make_shared<train::RunState>(good)).epochs.size() == 4);
}

TEST_CASE("a resume that fails late (model, a scheduler, a generator) leaves every part as it was") {
  TempDir dir("late_failure");
  Setup first(1, Callbacks::stateful);
  first.fit(2, dir / "run.state");
  const train::RunState good = train::load_run_state(dir / "run.state");
  // the model's state does not fit: found after the callbacks were tried
  auto wrong_model = std::make_shared<train::RunState>(good);
  wrong_model->model[0].second = zeros({1});
  // the scheduler (callback 1) holds a NaN base rate: found after callback 0 (EarlyStopping) loaded
  auto nan_base = std::make_shared<train::RunState>(good);
  for (auto& [name, t] : nan_base->callbacks)
    if (name == "1.LearningRateScheduler.base_lrs") t = tensor({std::nan("")}, {1}, DType::f64);
  // the last callback's state is unknown to it
  auto last_bad = std::make_shared<train::RunState>(good);
  last_bad->callbacks.emplace_back("2.ConvergenceStop.surprise", scalar(1.0, DType::f64));
  // a generator state that does not parse
  auto bad_rng = std::make_shared<train::RunState>(good);
  bad_rng->rng["dropout"] = "not a state";
  struct Case {
    std::shared_ptr<train::RunState> ckpt;
    const char* message;
  };
  for (const Case& c : {Case{wrong_model, "load_state_dict"}, Case{nan_base, "base_lrs[0] = nan"},
                        Case{last_bad, "unknown state 'surprise'"}, Case{bad_rng, "generator 'dropout' is malformed"}}) {
    CAPTURE(c.message);
    Setup s(5, Callbacks::stateful);
    s.fit(1, "");  // callbacks and optimizer with state of their own, not fresh ones
    const auto before = run_state(s);
    CHECK_THROWS_WITH_AS(s.fit(4, "", c.ckpt), doctest::Contains(c.message), std::invalid_argument);
    CHECK(run_state(s) == before);
  }
}

TEST_CASE("a run state keeps a diverged loss: inf and -inf read back as themselves, NaN as NaN") {
  TempDir dir("nonfinite");
  train::RunState c = small_run_state(1);
  c.history.epochs[0].values = {{"loss", INFINITY}, {"val_loss", -INFINITY}, {"accuracy", std::nan("")}};
  train::save_run_state(c, dir / "inf.state");
  train::RunState back = train::load_run_state(dir / "inf.state");
  const auto& v = back.history.epochs.at(0).values;
  CHECK(v.at("loss") == INFINITY);
  CHECK(v.at("val_loss") == -INFINITY);
  CHECK(std::isnan(v.at("accuracy")));
}
