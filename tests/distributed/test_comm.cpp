// Collectives: the results every rank must see, written for any world size (one process under
// ctest's discovered tests, two under mpirun).
#include <doctest/doctest.h>

#include <string>

#include "autograd/autograd.hpp"
#include "distributed/comm.hpp"
#include "nn/layers.hpp"

using namespace tapegrad;
namespace dist = tapegrad::distributed;

TEST_CASE("rank and world size describe the launch") {
  const int n = dist::world_size();
  CHECK(n >= 1);
  CHECK(dist::rank() >= 0);
  CHECK(dist::rank() < n);
  if (!dist::built_with_mpi() || !dist::launched_by_mpi()) {
    CHECK(n == 1);
    CHECK_FALSE(dist::is_initialized());
  } else {
    CHECK(dist::is_initialized());
  }
}

TEST_CASE("all_reduce sum, mean and max over ranks") {
  const int n = dist::world_size(), r = dist::rank();
  for (DType d : {DType::f32, DType::f64}) {
    // rank r holds [r + 1, 10 * (r + 1), -r]
    Tensor t = tensor({r + 1.0, 10.0 * (r + 1), -1.0 * r}, d);
    Tensor s = t.clone(), m = t.clone(), x = t.clone();
    dist::all_reduce(s, dist::ReduceOp::sum);
    dist::all_reduce(m, dist::ReduceOp::mean);
    dist::all_reduce(x, dist::ReduceOp::max);
    const double tri = n * (n + 1) / 2.0;  // 1 + 2 + ... + n
    CHECK(s.to_vector() == std::vector<double>{tri, 10 * tri, -(tri - n)});
    CHECK(m.to_vector()[0] == doctest::Approx(tri / n).epsilon(1e-12));
    CHECK(m.to_vector()[1] == doctest::Approx(10 * tri / n).epsilon(1e-12));
    CHECK(x.to_vector() == std::vector<double>{1.0 * n, 10.0 * n, 0.0});
    CHECK(s.dtype() == d);
  }
  Tensor i = index_tensor({r, 7});
  dist::all_reduce(i);
  CHECK(i.to_vector() == std::vector<double>{n * (n - 1) / 2.0, 7.0 * n});
  CHECK(dist::all_reduce_value(r + 1.0, dist::ReduceOp::max) == n);
}

TEST_CASE("all_reduce bumps the version and writes through views") {
  Tensor base = ones({2, 3}, DType::f64);
  Tensor v = base.reshape({6});
  const uint64_t before = base.version();
  dist::all_reduce(v);
  CHECK(base.version() > before);
  CHECK(base.at({1, 2}) == dist::world_size());
}

TEST_CASE("all_reduce rejects bool tensors and an int64 mean, naming op, dtype and shape") {
  Tensor b = zeros({2, 2}, DType::b8);
  try {
    dist::all_reduce(b);
    FAIL("no error");
  } catch (const DTypeError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("distributed::all_reduce") != std::string::npos);
    CHECK(msg.find("bool") != std::string::npos);
    CHECK(msg.find("[2, 2]") != std::string::npos);
  }
  Tensor i = index_tensor({1, 2});
  CHECK_THROWS_WITH_AS(dist::all_reduce(i, dist::ReduceOp::mean),
                       doctest::Contains("ReduceOp::mean of an int64 tensor of shape [2]"), DTypeError);
  Tensor u;
  CHECK_THROWS_AS(dist::all_reduce(u), std::invalid_argument);
}

TEST_CASE("broadcast copies the root's tensor, any dtype") {
  const int n = dist::world_size(), r = dist::rank();
  for (int root = 0; root < n; ++root) {
    Tensor f = full({3}, 100.0 * r + 1, DType::f32);
    Tensor b = full({2}, r == root ? 1.0 : 0.0, DType::b8);
    dist::broadcast(f, root);
    dist::broadcast(b, root);
    CHECK(f.to_vector() == std::vector<double>(3, 100.0 * root + 1));
    CHECK(b.to_vector() == std::vector<double>(2, 1.0));
  }
  Tensor t = zeros({1});
  CHECK_THROWS_WITH_AS(dist::broadcast(t, n), doctest::Contains("root"), std::out_of_range);
}

TEST_CASE("all_reduce_async completes on wait and on done") {
  const int n = dist::world_size();
  Tensor a = full({1000}, 2.0, DType::f64), b = full({5}, 3.0, DType::f32);
  dist::Work wa = dist::all_reduce_async(a, dist::ReduceOp::mean);
  dist::Work wb = dist::all_reduce_async(b, dist::ReduceOp::sum);
  wa.wait();
  while (!wb.done()) {
  }
  CHECK(wb.done());
  wa.wait();  // idempotent: mean divides once
  CHECK(a.at({999}) == 2.0);
  CHECK(b.at({4}) == 3.0 * n);
  dist::Work idle;
  CHECK(idle.done());
}

TEST_CASE("broadcast_parameters makes every rank start from root's weights") {
  Generator gen(1234 + static_cast<uint64_t>(dist::rank()));  // different initial weights per rank
  nn::Linear layer(4, 3, gen);
  dist::broadcast_parameters(layer, 0);
  for (Tensor p : layer.parameters()) {
    Tensor mx = p.clone(), mn = p.clone() * -1.0;
    dist::all_reduce(mx, dist::ReduceOp::max);
    dist::all_reduce(mn, dist::ReduceOp::max);  // -min
    for (int64_t i = 0; i < p.numel(); ++i) CHECK(mx.to_vector()[i] == -mn.to_vector()[i]);
  }
}

TEST_CASE("barrier returns on every rank") {
  dist::barrier();
  CHECK(dist::all_reduce_value(1.0) == dist::world_size());
}
