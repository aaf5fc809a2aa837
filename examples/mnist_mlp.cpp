// The seed model: an MLP on MNIST digits, as the Keras original
//
//     model = tf.keras.Sequential([layers.Flatten(input_shape=(28, 28)), layers.Dense(128, activation="relu"),
//                                  layers.Dense(10)])
//     model.compile(optimizer=tf.keras.optimizers.Adam(1e-3), metrics=["accuracy"],
//                   loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
//     model.fit(x_train / 255, y_train, epochs=5, batch_size=32)
//     model.evaluate(x_test / 255, y_test)
//
// Usage: mnist_mlp [--dataset mnist|fashion-mnist] [--data DIR] [--epochs 5] ... (--help lists every flag)
#include "examples/common.hpp"
#include "nn/nn.hpp"
#include "optim/optim.hpp"

using namespace tapegrad;

int main(int argc, char** argv) {
  auto args = examples::parse_args(argc, argv, "Trains and evaluates the seed MLP (784-128-10) on MNIST-format data",
                                   {.dataset = "mnist", .epochs = 5, .batch_size = 32, .lr = 1e-3});
  return examples::run(args, [&] {
    auto [train, test] = examples::load_data(args);  // images [N,1,28,28] scaled by 1/255, labels int64
    auto model = std::make_shared<nn::Sequential>(nn::Flatten(), nn::Linear(784, 128), nn::ReLU(), nn::Linear(128, 10));
    auto optimizer = examples::make_optimizer(args, model->parameters());  // Adam(lr 1e-3) by default
    auto loss = examples::cross_entropy_loss;  // sparse categorical cross-entropy, softmax folded in
    auto trained = examples::data_parallel(model);  // under mpirun -np N: DistributedDataParallel
    auto history = train::fit(*trained, *optimizer, loss, train, examples::fit_options(args));
    auto result = train::evaluate(*model, loss, *test);
    examples::report(args, *model, history, result);
  });
}
