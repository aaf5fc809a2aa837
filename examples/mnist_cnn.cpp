// A small CNN for Fashion-MNIST: two Conv2d + ReLU + MaxPool blocks, then Linear layers, as in Keras
//
//     model = tf.keras.Sequential([layers.Conv2D(32, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
//                                  layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPooling2D(),
//                                  layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10)])
//
// Same flags as mnist_mlp; defaults: --dataset fashion-mnist --epochs 3.
#include "examples/common.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

int main(int argc, char** argv) {
  auto args = examples::parse_args(argc, argv, "Trains and evaluates a small CNN on MNIST-format data",
                                   {.dataset = "fashion-mnist", .epochs = 3, .batch_size = 32, .lr = 1e-3});
  return examples::run(args, [&] {
    auto [train, test] = examples::load_data(args);  // [N,1,28,28]
    auto model = std::make_shared<nn::Sequential>(
        nn::Conv2d(nn::Conv2dOptions(1, 32, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),   // [N,32,14,14]
        nn::Conv2d(nn::Conv2dOptions(32, 64, 3).padding(1)), nn::ReLU(), nn::MaxPool2d(2),  // [N,64,7,7]
        nn::Flatten(), nn::Linear(64 * 7 * 7, 128), nn::ReLU(), nn::Linear(128, 10));
    auto optimizer = examples::make_optimizer(args, model->parameters());
    auto loss = examples::cross_entropy_loss;
    auto trained = examples::data_parallel(model);  // under mpirun -np N: DistributedDataParallel
    auto history = train::fit(*trained, *optimizer, loss, train, examples::fit_options(args));
    auto result = train::evaluate(*model, loss, *test);
    examples::report(args, *model, history, result);
  });
}
