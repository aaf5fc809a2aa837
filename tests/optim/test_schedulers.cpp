// Learning-rate schedulers: closed forms at known epochs (values as PyTorch 1.13 gives them).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "autograd/autograd.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

namespace {
std::vector<double> trajectory(optim::Optimizer& opt, optim::LRScheduler& s, int epochs) {
  std::vector<double> out{opt.lr()};
  for (int e = 0; e < epochs; ++e) {
    s.step();
    out.push_back(opt.lr());
  }
  return out;
}
void check_close(const std::vector<double>& got, const std::vector<double>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i] == doctest::Approx(want[i]).epsilon(1e-12));
}
}  // namespace

TEST_CASE("StepLR, MultiStepLR, ExponentialLR") {
  Tensor p = tensor({1}).requires_grad_();
  optim::SGD a({p}, optim::SGDOptions(1.0));
  optim::StepLR step(a, 2, 0.5);
  check_close(trajectory(a, step, 5), {1, 1, 0.5, 0.5, 0.25, 0.25});
  optim::SGD b({p}, optim::SGDOptions(1.0));
  optim::MultiStepLR multi(b, {1, 3}, 0.1);
  check_close(trajectory(b, multi, 4), {1, 0.1, 0.1, 0.01, 0.01});
  optim::SGD c({p}, optim::SGDOptions(2.0));
  optim::ExponentialLR expo(c, 0.9);
  check_close(trajectory(c, expo, 3), {2, 1.8, 1.62, 1.458});
  CHECK_THROWS_AS(optim::StepLR(a, 0), std::invalid_argument);
}

TEST_CASE("CosineAnnealingLR and linear warm-up") {
  Tensor p = tensor({1}).requires_grad_();
  optim::SGD a({p}, optim::SGDOptions(1.0));
  optim::CosineAnnealingLR cosine(a, 4, 0.1);
  // 0.1 + 0.9·(1 + cos(π·e/4))/2
  check_close(trajectory(a, cosine, 4), {1.0, 0.86819805153394637, 0.55, 0.23180194846605365, 0.1});
  optim::SGD b({p}, optim::SGDOptions(0.3));
  optim::LinearWarmupLR warm(b, 3, 0.1);
  check_close(trajectory(b, warm, 5), {0.03, 0.12, 0.21, 0.3, 0.3, 0.3});
}

TEST_CASE("schedulers scale each group from its own base rate") {
  Tensor p = tensor({1}).requires_grad_(), q = tensor({1}).requires_grad_();
  optim::Adam opt({p}, optim::AdamOptions(1.0));
  opt.add_param_group({q}, optim::AdamOptions(0.1));
  optim::ExponentialLR s(opt, 0.5);
  s.step();
  CHECK(s.last_lr() == std::vector<double>{0.5, 0.05});
}

TEST_CASE("schedulers refuse a gamma or eta_min that is not finite and positive, in the constructor") {
  Tensor p = tensor({1}).requires_grad_();
  optim::SGD opt({p}, optim::SGDOptions(0.1));
  const double inf = std::numeric_limits<double>::infinity();
  for (double gamma : {-1.0, 0.0, std::nan(""), inf}) {
    CAPTURE(gamma);
    CHECK_THROWS_WITH_AS(optim::StepLR(opt, 1, gamma), doctest::Contains("tapegrad::optim::StepLR: gamma must be finite and > 0"),
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::MultiStepLR(opt, {1}, gamma),
                         doctest::Contains("tapegrad::optim::MultiStepLR: gamma must be finite and > 0"), std::invalid_argument);
    CHECK_THROWS_WITH_AS(optim::ExponentialLR(opt, gamma),
                         doctest::Contains("tapegrad::optim::ExponentialLR: gamma must be finite and > 0"), std::invalid_argument);
  }
  for (double eta_min : {-1.0, std::nan(""), inf}) {
    CAPTURE(eta_min);
    CHECK_THROWS_WITH_AS(optim::CosineAnnealingLR(opt, 2, eta_min),
                         doctest::Contains("tapegrad::optim::CosineAnnealingLR: eta_min must be finite and >= 0"),
                         std::invalid_argument);
  }
  CHECK(opt.lr() == 0.1);
}

TEST_CASE("a step whose rate overflows throws naming the scheduler, group, epoch and rate, and changes nothing") {
  Tensor p = tensor({1}).requires_grad_(), q = tensor({1}).requires_grad_();
  optim::SGD opt({p}, optim::SGDOptions(1.0));
  opt.add_param_group({q}, optim::SGDOptions(1e300));
  optim::StepLR step(opt, 1, 1e10);  // group 0 gets 1e10 at epoch 1, group 1 overflows
  CHECK_THROWS_WITH_AS(step.step(),
                       doctest::Contains("tapegrad::optim::StepLR::step: group 1 (base_lrs[1] = 1e+300) gets the "
                                         "learning rate inf at epoch 1; rates must be finite and >= 0"),
                       std::invalid_argument);
  CHECK(step.last_epoch() == 0);
  CHECK(step.last_lr() == std::vector<double>{1.0, 1e300});  // group 0 was not updated either
  // ExponentialLR overflows too, after enough epochs
  optim::SGD one({p}, optim::SGDOptions(1.0));
  optim::ExponentialLR expo(one, 1e100);
  for (int e = 0; e < 3; ++e) expo.step();
  CHECK_THROWS_WITH_AS(expo.step(), doctest::Contains("tapegrad::optim::ExponentialLR::step: group 0 (base_lrs[0] = 1) gets "
                                                      "the learning rate inf at epoch 4"),
                       std::invalid_argument);
  CHECK(expo.last_epoch() == 3);
  CHECK(one.lr() == doctest::Approx(1e300));
  // load_state_dict shares the check and names the scheduler
  auto state = expo.state_dict();
  state[0].second = scalar(5.0, DType::f64);  // last_epoch
  CHECK_THROWS_WITH_AS(expo.load_state_dict(state),
                       doctest::Contains("tapegrad::optim::ExponentialLR::load_state_dict: group 0 (base_lrs[0] = 1) "
                                         "gets the learning rate inf at epoch 5"),
                       std::invalid_argument);
  CHECK(expo.last_epoch() == 3);
}

TEST_CASE("ReduceLROnPlateau lowers the rate after `patience` bad epochs, then cools down") {
  Tensor p = tensor({1}).requires_grad_();
  optim::SGD opt({p}, optim::SGDOptions(1.0));
  optim::ReduceLROnPlateau plateau(opt, optim::ReduceLROnPlateau::Mode::min, 0.5, 2, 1e-4, 1, 0.2);
  plateau.step(1.0);  // best
  plateau.step(1.0);  // bad 1
  plateau.step(1.0);  // bad 2
  CHECK(opt.lr() == 1.0);
  plateau.step(1.0);  // bad 3 > patience: reduce
  CHECK(opt.lr() == 0.5);
  plateau.step(1.0);  // cooldown
  plateau.step(1.0);
  plateau.step(1.0);
  CHECK(opt.lr() == 0.5);
  plateau.step(1.0);
  CHECK(opt.lr() == 0.25);
  plateau.step(0.5);  // improvement resets the count
  plateau.step(0.5), plateau.step(0.5), plateau.step(0.5), plateau.step(0.5);
  CHECK(opt.lr() == 0.2);  // floored at min_lr
  CHECK_THROWS_AS(optim::ReduceLROnPlateau(opt, optim::ReduceLROnPlateau::Mode::max, 1.5), std::invalid_argument);
}

TEST_CASE("scheduler state dicts continue a schedule in a new scheduler, and refuse what does not fit") {
  Tensor p = tensor({1}).requires_grad_();
  optim::SGD a({p}, optim::SGDOptions(1.0));
  optim::CosineAnnealingLR cos_a(a, 6);
  for (int e = 0; e < 2; ++e) cos_a.step();
  const auto state = cos_a.state_dict();
  const auto rest = trajectory(a, cos_a, 4);
  // a new optimizer and scheduler, as after a restart: it starts at epoch 0 until the state arrives
  optim::SGD b({p}, optim::SGDOptions(1.0));
  optim::CosineAnnealingLR cos_b(b, 6);
  cos_b.load_state_dict(state);
  CHECK(cos_b.last_epoch() == 2);
  check_close(trajectory(b, cos_b, 4), rest);
  // two groups' base rates do not fit a one-group optimizer; nothing changes
  Tensor q = tensor({2}).requires_grad_();
  optim::SGD two({p}, optim::SGDOptions(1.0));
  two.add_param_group({q}, optim::SGDOptions(0.5));
  optim::StepLR step_two(two, 1);
  optim::SGD one({p}, optim::SGDOptions(1.0));
  optim::StepLR step_one(one, 1);
  CHECK_THROWS_WITH_AS(step_one.load_state_dict(step_two.state_dict()), doctest::Contains("'base_lrs' has 2 elements, expected 1"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(step_one.load_state_dict({}), doctest::Contains("no 'last_epoch'"), std::invalid_argument);
  CHECK(step_one.last_epoch() == 0);
  // ReduceLROnPlateau: best value, bad-epoch and cooldown counters
  optim::SGD c({p}, optim::SGDOptions(1.0));
  optim::ReduceLROnPlateau plateau(c, optim::ReduceLROnPlateau::Mode::min, 0.5, 1, 1e-4, 1);
  for (double m : {1.0, 0.9, 0.95, 0.96}) plateau.step(m);
  optim::SGD d({p}, optim::SGDOptions(c.lr()));
  optim::ReduceLROnPlateau again(d, optim::ReduceLROnPlateau::Mode::min, 0.5, 1, 1e-4, 1);
  again.load_state_dict(plateau.state_dict());
  for (double m : {0.97, 0.98, 0.99, 0.5, 0.6, 0.7}) {
    plateau.step(m);
    again.step(m);
    CHECK(d.lr() == c.lr());
    CHECK(again.num_bad_epochs() == plateau.num_bad_epochs());
  }
  CHECK(c.lr() < 0.5);
}
