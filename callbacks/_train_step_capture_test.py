"""The Keras behaviour `_train_step_capture` relies on, named so a change shows."""

import keras
import numpy as np

from callbacks import _train_step_capture


def test_fit_builds_the_train_function_first_and_looks_it_up_every_step():
    class Spy(keras.callbacks.Callback):
        calls = 0

        def on_train_begin(self, logs=None):
            self.built_before_begin = self.model.train_function is not None
            original = self.model.train_function

            def counting(*args):
                Spy.calls += 1
                return original(*args)

            self.model.train_function = counting

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    spy = Spy()
    model.fit(np.zeros((8, 2)), np.zeros((8, 1)), batch_size=2, callbacks=[spy], verbose=0)

    assert spy.built_before_begin
    assert Spy.calls == 4


def test_optimizer_apply_and_its_variables_are_where_the_capture_looks():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    optimizer = keras.optimizers.SGD(global_clipnorm=1.0)
    optimizer.build(model.trainable_variables)

    assert callable(optimizer.apply)
    assert list(optimizer._trainable_variables) == list(model.trainable_variables)
    assert optimizer.global_clipnorm == 1.0


def test_the_model_gets_its_own_train_function_back():
    class Registered(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.hub = _train_step_capture.register(self, "test")
            self.seen = []
            self.hub.peek(self.seen.append)

        def on_train_end(self, logs=None):
            _train_step_capture.unregister(self)

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.make_train_function()
    own = model.train_function
    callback = Registered()
    model.fit(np.ones((8, 2)), np.zeros((8, 1)), batch_size=4, callbacks=[callback],
              verbose=0)

    assert model.train_function is own
    x, y = callback.seen[0][:2]
    assert tuple(x.shape) == (4, 2) and tuple(y.shape) == (4, 1)
