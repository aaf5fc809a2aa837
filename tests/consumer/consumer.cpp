// A program outside tapegrad, built against it the three ways a user would (tests/consumer/run.sh:
// the installed CMake package, add_subdirectory, pkg-config). It runs the README's core example,
// trains a small model a few steps and gradchecks a custom op; any failure exits non-zero.
#include <tapegrad/tapegrad.hpp>          // the canonical form for consumers
#include <tapegrad/autograd/tensor.hpp>   // a single header, same form

#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

using namespace tapegrad;

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

// y = x³, dy/dx = 3x² — or a wrong backward (2x²) to show that gradcheck notices.
Tensor cube(const Tensor& x, double slope) {
  return custom_op("cube", {x},
      [](const std::vector<Tensor>& in) { return in[0] * in[0] * in[0]; },
      [slope](const std::vector<Tensor>& in, const Tensor& grad, const Tensor& /*result*/) -> Grads {
        return {grad * in[0] * in[0] * slope};
      });
}

}  // namespace

int main() {
  manual_seed(7);

  // The README's core example.
  Tensor x = randn({32, 784});
  Tensor w = (randn({784, 10}) * 0.01).detach().requires_grad_();
  Tensor b = zeros({10}).requires_grad_();
  Tensor loss = mean(logsumexp(matmul(x, w) + b, {1}));
  loss.backward();
  check(w.grad().shape() == Shape{784, 10} && b.grad().shape() == Shape{10}, "backward fills w.grad and b.grad");
  // d mean(logsumexp(z)) / db = mean over rows of softmax(z): a probability vector, summing to 1.
  check(std::abs(sum(b.grad()).item() - 1.0) < 1e-5, "b.grad sums to 1 (mean of softmax rows)");
  Tensor g = grad({sum(tanh(w))}, {w}, {}, false, /*create_graph=*/true)[0];
  check(g.requires_grad() && g.shape() == w.shape(), "functional grad with create_graph is differentiable");
  {
    NoGradGuard no_grad;
    float before = w.data<float>()[0];
    w.mutable_data<float>()[0] -= 0.1f * w.grad().data<float>()[0];
    check(w.data<float>()[0] != before || w.grad().data<float>()[0] == 0.f, "update off the tape");
  }

  // A small model learns XOR in a few hundred Adam steps.
  Tensor inputs = tensor({0, 0, 0, 1, 1, 0, 1, 1}, {4, 2});
  Tensor targets = tensor({0, 1, 1, 0}, {4, 1});
  auto model = std::make_shared<nn::Sequential>(nn::Linear(2, 8), nn::Tanh(), nn::Linear(8, 1));
  optim::Adam optimizer(model->parameters(), optim::AdamOptions(0.05));
  double first = 0, last = 0;
  for (int step = 0; step < 300; ++step) {
    optimizer.zero_grad();
    Tensor l = nn::F::mse_loss(model->forward(inputs), targets);
    l.backward();
    optimizer.step();
    (step == 0 ? first : last) = l.item();
  }
  std::printf("XOR: mse %.4f -> %.6f\n", first, last);
  check(last < 0.01 && last < first, "XOR trained (mse < 0.01)");

  // gradcheck and gradgradcheck of a custom op; a wrong gradient must fail.
  auto right = [](const std::vector<Tensor>& in) { return cube(in[0], 3.0); };
  auto wrong = [](const std::vector<Tensor>& in) { return cube(in[0], 2.0); };
  Tensor x64 = randn({3, 4}, DType::f64).requires_grad_();
  GradcheckResult r1 = gradcheck(right, {x64});
  GradcheckResult r2 = gradgradcheck(right, {x64});
  GradcheckResult r3 = gradcheck(wrong, {x64});
  check(r1.ok, "gradcheck of cube");
  check(r2.ok, "gradgradcheck of cube");
  check(!r3.ok && !r3.message.empty(), "gradcheck rejects a wrong gradient");
  if (!r1.ok || !r2.ok) std::printf("%s\n%s\n", r1.message.c_str(), r2.message.c_str());

  std::printf("%s\n", failures == 0 ? "consumer: all checks passed" : "consumer: FAILED");
  return failures == 0 ? 0 : 1;
}
