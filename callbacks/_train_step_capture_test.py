"""The Keras behaviour `_train_step_capture` relies on, named so a change shows."""

import keras
import numpy as np
import pytest

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


class Scheduled(keras.callbacks.Callback):
    """Asks the dispatcher for the calls whose first batch is in `wanted`."""

    def __init__(self, wanted):
        super().__init__()
        self.wanted = wanted

    def on_train_begin(self, logs=None):
        self.hub = _train_step_capture.register(self, "test")
        self.hub.schedule(self, measure=False)
        self.called = []
        self.asked = []

    def on_epoch_begin(self, epoch, logs=None):
        self.hub.begin_epoch()

    def next_call(self, done, batch):
        self.asked.append(done)
        later = [b for b in self.wanted if b >= batch]
        return done + later[0] - batch if later else float("inf")

    def after_call(self, logs):
        self.called.append(self.hub.step)

    def on_train_end(self, logs=None):
        _train_step_capture.unregister(self)


def fit_eight_batches(callback, epochs=1):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(np.zeros((16, 2)), np.zeros((16, 1)), batch_size=2, epochs=epochs,
              callbacks=[callback], verbose=0)
    return model


def test_a_scheduled_callback_is_called_after_the_calls_it_asks_for_only():
    callback = Scheduled(wanted=[0, 5])
    fit_eight_batches(callback, epochs=2)

    # Steps done after each call asked for: batches 0 and 5 of both epochs.
    assert callback.called == [1, 6, 9, 14]
    # Asked only at the calls it wanted, for this call and the next one:
    # never on the calls between.
    assert callback.asked == [0, 1, 5, 6, 8, 9, 13, 14]


def test_a_watcher_sees_the_logs_of_the_calls_it_asks_for_only():
    class Watching(Scheduled):
        def on_train_begin(self, logs=None):
            super().on_train_begin(logs)
            self.watched = []
            self.hub.watch(self, self.receive)

        def receive(self, logs):
            self.watched.append((self.hub.step, sorted(logs)))
            return self.hub.step + 2

    callback = Watching(wanted=[0, 5])
    fit_eight_batches(callback)

    # The first call is scheduled for it (`after_call`, not the watcher);
    # the watcher sees the next one, then asks for the call two steps after
    # each: it sees the calls of batches 1, 4 and 7 (steps done after them:
    # 2, 5, 8), never those between.
    assert callback.called == [1, 6]
    assert callback.watched == [(2, ["loss"]), (5, ["loss"]), (8, ["loss"])]


def test_the_monitors_leave_the_batch_begin_hook_to_keras():
    from callbacks import ActivationMonitor, GradientMonitor

    for monitor in (GradientMonitor, ActivationMonitor):
        assert monitor.on_train_batch_begin is keras.callbacks.Callback.on_train_batch_begin


def test_a_dispatcher_left_by_a_fit_that_raised_starts_afresh():
    class Failing(Scheduled):
        def after_call(self, logs):
            raise RuntimeError("stop here")

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = (np.zeros((16, 2)), np.zeros((16, 1)))
    with pytest.raises(RuntimeError, match="stop here"):
        model.fit(*data, batch_size=2, callbacks=[Failing(wanted=[3])], verbose=0)
    callback = Scheduled(wanted=[3])
    model.fit(*data, batch_size=2, callbacks=[callback], verbose=0)

    assert callback.called == [4]
    assert model.train_function is not callback.hub.function
