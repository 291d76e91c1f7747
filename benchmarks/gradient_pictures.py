"""Draws the README's two GradientMonitor pictures.

A 10-layer, 32-unit MLP trained for three epochs with SGD on synthetic binary
data, once with sigmoid activations and Glorot initialisation (vanishing
gradients: the first layer gets about 1e-6 of the last layer's gradient) and
once with ReLU and He initialisation (healthy: every ratio stays near 1).

Run: python -m benchmarks.gradient_pictures [--output-dir docs]
"""

import argparse
import os
import pathlib
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from callbacks.gradient_monitor import GradientMonitor  # noqa: E402

NETWORKS = {
    "gradient_vanishing_sigmoid.png": ("sigmoid", "glorot_uniform"),
    "gradient_healthy_relu.png": ("relu", "he_normal"),
}
DEPTH = 10
UNITS = 32
SEED = 0


def deep_mlp(activation, initializer, features):
    hidden = [
        keras.layers.Dense(UNITS, activation=activation,
                           kernel_initializer=initializer, name=f"hidden_{i}")
        for i in range(1, DEPTH + 1)
    ]
    return keras.Sequential(
        [keras.Input((features,)), *hidden,
         keras.layers.Dense(1, activation="sigmoid", name="output")]
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="docs")
    args = parser.parse_args()
    output_dir = pathlib.Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    rng = np.random.default_rng(SEED)
    x = rng.normal(size=(2048, 20)).astype("float32")
    y = (x[:, :3].sum(axis=1, keepdims=True) > 0).astype("float32")
    for filename, (activation, initializer) in NETWORKS.items():
        keras.utils.set_random_seed(SEED)
        model = deep_mlp(activation, initializer, x.shape[1])
        model.compile(optimizer=keras.optimizers.SGD(0.05), loss="binary_crossentropy")
        monitor = GradientMonitor(probe=(x[:256], y[:256]), every_n_batches=16)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the verdict is the picture
            model.fit(x, y, batch_size=32, epochs=3, callbacks=[monitor], verbose=0)
        monitor.plot(output_dir / filename)
        print(f"{output_dir / filename}: {activation}, smallest ratio "
              f"{min(monitor.history['grad_norm/min_ratio']):.1e}")


if __name__ == "__main__":
    main()
