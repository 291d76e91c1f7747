"""A trial's whole `model.fit` as one compiled JAX program: epochs, validation, early stopping.

On the small tables a search tunes on, a JAX training step lasts tens of
microseconds, while Keras' `fit` loop spends about 4 ms of Python an epoch
around the compiled steps: resetting and reading metrics, dispatching each
step, evaluating the validation rows and calling the callbacks (measured
with cProfile on breast_cancer, 5 folds of about 95 epochs: 1.9 s a trial,
nearly all of it that loop). `fused(model)` makes `model.fit` run the
same training instead as one `jax.lax.while_loop` over the epochs: each
epoch a `lax.scan` of Keras' own `model.train_step` over the epoch's
batches (the rows `templates.batches.ArrayBatches` would serve, in the same
order), the metrics reset as Keras resets them, `model.test_step` on the
validation rows, and `keras.callbacks.EarlyStopping`'s rule, best weights
included. One compiled call then trains a fold, and a trial's folds share
the program when they share the model (`tuning.fold_models`). The number
of epochs, whether to validate and the early-stopping settings are the
program's arguments, not part of it: a search's final retraining (no
validation, no early stopping, its trial's best epoch count) runs the
program its trial compiled, read back from JAX's persistent compilation
cache, when both name the same fits (`row_counts`, `max_epochs`). So are
the float settings a template computes from its training rows (the
regression template's target scaling: `Rescaling`'s scale and offset, the
loss weight, `DataLoss`'s weight; `row_settings`): the folds of a trial,
each in a model of its own there, run the program of the first
(`program_of`, `tuning.fold_models.same_program`), and so does the final
retraining, through the cache.

It returns the `History` Keras' `fit` would, and leaves the model, its
optimizer and the callbacks in the state Keras' `fit` would. Anything it
does not reproduce exactly runs Keras' own `fit` instead (`unsupported`
says why): other backends, other inputs than `ArrayBatches`, a custom
`train_step`, a validation set larger than one batch, and callbacks other
than `EarlyStopping`, `tuning.fail_on_nan.FailOnNaN` and those that act
only when training begins or ends (a trial's checkpoint), or `verbose` other
than 0. A
template edited to add a callback that runs every epoch therefore still
trains, at Keras' speed.

Example:

>>> import keras, numpy as np
>>> from templates.batches import ArrayBatches
>>> inputs = keras.Input((2,), name="x")
>>> model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
>>> model.compile("sgd", "mse")
>>> rows = {"x": np.ones((8, 2), "float32")}
>>> train = ArrayBatches(rows, np.ones(8, "float32"), batch_size=4, shuffle=True)
>>> with fused(model):
...     history = model.fit(train, validation_data=ArrayBatches(rows, np.ones(8, "float32")),
...                         epochs=3, verbose=0)
>>> len(history.history["val_loss"])
3
"""

import contextlib
import contextvars
import dataclasses
import weakref

import keras
import numpy as np

from templates.batches import ArrayBatches
from tuning import fold_models, keras_internals
from tuning.fail_on_nan import FailOnNaN

# `fit` arguments the compiled program reproduces, with the values it supports.
DEFAULT_ARGUMENTS = {"y": None, "batch_size": None, "validation_split": 0.0,
                     "class_weight": None, "sample_weight": None, "steps_per_epoch": None,
                     "validation_steps": None, "validation_batch_size": None,
                     "validation_freq": 1}
# Callback hooks that may be overridden by a callback the program leaves to Keras' calls.
END_HOOKS = {"on_train_begin", "on_train_end"}
CALLBACK_HOOKS = sorted(name for name in dir(keras.callbacks.Callback) if name.startswith("on_"))

# One compiled program per model and shape of its inputs (`jax.jit` keys the shapes).
_programs = weakref.WeakKeyDictionary()
# What `before_training(wait)` runs before the next fit trains: `[wait]`, then `[]`.
_before_training = contextvars.ContextVar("before_training", default=None)
# XLA options the programs compile with: compiling is most of a trial, running
# it little. XLA's older elemental emitters and LLVM's -O1 compile a 3-layer
# template network's program in 0.95 s of CPU instead of 1.55 s; it then runs
# a quarter to a half slower (0.20 s against 0.13 s per 100 epochs of a
# breast_cancer fold) with the same history to about 1e-7 (LLVM orders some
# float operations differently). Whole trials are faster (docs/tuning.md).
# LLVM in one piece rather than split across threads: 0.73 s of CPU instead
# of 0.82 s, the same code; in a search, whose cores are busy with the trials
# getting ready, less CPU is what counts. Vectors of 512 bits where the CPU
# has them (AVX-512): the run takes 9 % less CPU, with the same history to
# about 1e-8 (benchmarks/README.md). An XLA release that no longer knows an
# option compiles with its defaults.
COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1,
                    "xla_cpu_parallel_codegen_split_count": 1, "xla_cpu_prefer_vector_width": 512}


@dataclasses.dataclass
class FitRecord:
    """What the `fit` calls inside `fused` ran: `fused` counts the compiled ones.

    Attributes:
        fused: int, calls that ran as one compiled program.
        keras: list of str, for each call that ran in Keras' own loop, why.
    """

    fused: int = 0
    keras: list = dataclasses.field(default_factory=list)


@contextlib.contextmanager
def before_training(wait):
    """While open, the first `fit` inside `fused` calls `wait()` before it trains.

    Once its program is compiled (its callbacks' `on_train_begin` has run
    by then), or, where `fused` leaves the fit to Keras' own loop, before
    that loop starts: `tuning.trial_ahead` gets a search's next trial ready
    that way while the current one trains.

    Example:

    >>> with before_training(lambda: None):
    ...     pass
    """
    token = _before_training.set([wait])
    try:
        yield
    finally:
        _before_training.reset(token)


def _wait_before_training():
    waits = _before_training.get()
    if waits:  # once: `before_training` is about the first fit
        waits.pop()()


@contextlib.contextmanager
def fused(model, row_counts=(), ahead=None, max_epochs=None, program_of=None):
    """While open, `model.fit` runs as one compiled program where it can (JAX only).

    Args:
        model: a compiled `keras.Model`.
        row_counts: optional `(training_rows, validation_rows)` of every fit
            that will run this program, e.g. a trial's folds and the final
            retraining of its configuration (validation rows 0): the
            program is then compiled for the largest and serves them all,
            in this model, and in a model built the same way in another
            process through JAX's persistent compilation cache.
        ahead: optional `FoldsAhead` of the later fits in `model`: the first
            fit starts their programs side by side with its own.
        max_epochs: optional int, the most epochs any of those fits trains:
            the program is compiled for that many, and a shorter fit stops
            sooner.
        program_of: optional model whose compiled programs `model`'s fits
            run, for which `tuning.fold_models.same_program(program_of,
            model)` holds: `model` is then neither traced nor compiled.

    Yields:
        `FitRecord` of the calls made while open.
    """
    record = FitRecord()

    def fit(*args, **kwargs):
        arguments = _fit_arguments(*args, **kwargs)
        reason = unsupported(model, arguments)
        if reason is None:
            fused_fit = _FusedFit(model, arguments, row_counts, ahead, max_epochs, program_of)
            reason = fused_fit.prepare()
        if reason is not None:
            record.keras.append(reason)
            _wait_before_training()
            return type(model).fit(model, *args, **kwargs)
        record.fused += 1
        return fused_fit.run()

    outer = vars(model).get("fit")  # an enclosing `fused` on the same model
    object.__setattr__(model, "fit", fit)  # an instance attribute: no Keras tracking
    try:
        yield record
    finally:
        if outer is None:
            object.__delattr__(model, "fit")
        else:
            object.__setattr__(model, "fit", outer)


def unsupported(model, arguments):
    """Why `model.fit(**arguments)` must run in Keras' own loop, or `None` when it need not.

    Args:
        model: a compiled `keras.Model`.
        arguments: dict of `fit`'s arguments by name.

    Returns:
        str naming what the compiled program does not reproduce, or `None`.
    """
    if keras.backend.backend() != "jax":
        return f"the {keras.backend.backend()} backend"
    from keras.src.backend.jax.trainer import JAXTrainer

    if type(model).train_step is not JAXTrainer.train_step or (
            type(model).test_step is not JAXTrainer.test_step):
        return "a custom train_step or test_step"
    if model.run_eagerly or not model.jit_compile or model.optimizer is None:
        return "an eager or optimizer-less model"
    if keras.distribution.distribution() is not None:
        return "a distribution"
    if arguments.get("shuffle"):
        return "shuffle=True (Keras then shuffles the order of the batches)"
    if arguments.get("verbose") != 0:
        return f"verbose={arguments.get('verbose')!r} (Keras' progress bar)"
    for name, default in DEFAULT_ARGUMENTS.items():
        value = arguments.get(name, default)
        if value is not default and (default is None or value != default):
            return f"{name}={_short(value)}"
    train, validation = arguments.get("x"), arguments.get("validation_data")
    if not isinstance(train, ArrayBatches) or not train.shuffle or train.targets is None:
        return "training data other than shuffled ArrayBatches with targets"
    if validation is not None and (not isinstance(validation, ArrayBatches) or (
            validation.targets is None or validation.shuffle or len(validation) != 1)):
        return "validation data other than one batch of ArrayBatches with targets"
    for batches in (train, validation or train):
        arrays = [*batches.inputs.values(), np.asarray(batches.targets)]
        if any(not (np.issubdtype(array.dtype, np.number) or array.dtype == bool)
               for array in arrays):
            return "a column of text or objects"
    if arguments.get("epochs", 1) <= arguments.get("initial_epoch", 0):
        return "no epoch to train"
    return _unsupported_callbacks(arguments.get("callbacks") or [])


def _unsupported_callbacks(callbacks):
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return "a CallbackList"
    if sum(isinstance(callback, keras.callbacks.EarlyStopping) for callback in callbacks) > 1:
        return "more than one EarlyStopping"
    for callback in callbacks:
        if isinstance(callback, (keras.callbacks.EarlyStopping, FailOnNaN)):
            continue
        overridden = {hook for hook in CALLBACK_HOOKS
                      if getattr(type(callback), hook) is not getattr(keras.callbacks.Callback,
                                                                      hook)}
        if not overridden <= END_HOOKS:
            return f"the callback {type(callback).__name__} ({', '.join(sorted(overridden))})"
    return None


def _short(value):
    """`value` as a few characters: an array by its shape."""
    shape = getattr(value, "shape", None)
    return f"an array of shape {tuple(shape)}" if shape is not None else repr(value)[:40]


def _fit_arguments(x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
                   validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
                   sample_weight=None, initial_epoch=0, steps_per_epoch=None,
                   validation_steps=None, validation_batch_size=None, validation_freq=1):
    """`keras.Model.fit`'s arguments by name, positional ones included."""
    return dict(locals())


class _FusedFit:
    """One `fit` call as one compiled program; `run()` returns its `History`."""

    def __init__(self, model, arguments, row_counts, ahead=None, max_epochs=None,
                 program_of=None):
        self.model = model
        self.program_of = program_of
        self.ahead = ahead
        self.train = arguments["x"]
        self.validation = arguments["validation_data"]
        self.initial_epoch = arguments["initial_epoch"]
        self.epochs = arguments["epochs"] - self.initial_epoch
        self.epoch_capacity = max(self.epochs, max_epochs or 0)
        self.callbacks = [*(arguments["callbacks"] or []), keras.callbacks.History()]
        validation_rows = self.validation.num_rows if self.validation is not None else 0
        counts = [(self.train.num_rows, validation_rows), *row_counts]
        self.train_capacity = max(train for train, _ in counts)
        # The validation rows every validating fit has are one batch, the
        # others one row each; a fit without validation passes zeros.
        validations = [validation for _, validation in counts if validation]
        self.validation_main = min(validations, default=0)
        self.validation_tail = max(validations, default=0) - self.validation_main

    def prepare(self):
        """Builds the model as `fit` does first; returns why Keras' loop must run, or `None`."""
        model = self.model
        keras_internals.build_for_fit(model, self.train[0])
        model.reset_metrics()
        self.names = _metric_names(model)
        self.stopping = next((callback for callback in self.callbacks
                              if isinstance(callback, keras.callbacks.EarlyStopping)), None)
        if self.stopping is not None:
            self.stopping.set_model(model)
            try:
                keras_internals.set_monitor_op(self.stopping)
            except ValueError:  # Keras' loop raises it after the first epoch
                return "an EarlyStopping monitor of unknown direction"
            if self.stopping.monitor_op not in (keras.ops.less, keras.ops.greater):
                return "an EarlyStopping comparison other than less or greater"
        # The program validates when any of its fits does: this one may not.
        self.rule = _StoppingRule.of(self.stopping, self.names, self.validation is not None,
                                     program_validates=bool(self.validation_main))
        return None

    def run(self):
        """Trains as Keras' `fit` would; returns the `History`."""
        model, callbacks, history = self.model, self.callbacks, self.callbacks[-1]
        names, stopping = self.names, self.stopping
        params = {"verbose": 0, "epochs": self.initial_epoch + self.epochs,
                  "steps": len(self.train)}
        for callback in callbacks:
            callback.set_model(model)
            callback.set_params(params)
        validates, rule = self.validation is not None, self.rule
        fails_on_nan = any(isinstance(callback, FailOnNaN) for callback in callbacks)
        model.stop_training = False
        for callback in callbacks:
            callback.on_train_begin()

        shape = _ProgramShape(
            names=tuple(names), fails_on_nan=fails_on_nan,
            validates=bool(self.validation_main), weight_positions=_weight_positions(model),
            batch_size=self.train.batch_size,
            max_batches=self.train_capacity // self.train.batch_size,
            validation_tail=self.validation_tail)
        # Another model's program, where it has one for this shape (traced on it).
        owner = self.program_of
        if owner is None or shape not in _programs.get(owner, {}):
            owner = model
        program = _program(owner, shape)
        inputs = self._program_inputs(_state_values(model), self.train, self.validation)
        program.compiled_for(inputs)
        _wait_before_training()
        if self.ahead is not None:
            outputs = self.ahead.outputs(model, program, inputs, self._later_inputs)
        else:
            outputs = program.run(inputs)
        for variables, values in zip(_state_variables(model), outputs["state"], strict=True):
            for variable, value in zip(variables, values, strict=True):
                variable.assign(value)
        for variable, value in zip(model.metrics_variables, outputs["metrics"], strict=True):
            variable.assign(value)

        # The step Keras passes `on_train_batch_end` after an epoch's last call.
        calls = -(-len(self.train) // model.steps_per_execution)
        last_call_end = calls * model.steps_per_execution - 1
        logs = None
        for index in range(int(outputs["epochs_run"])):
            epoch, row = self.initial_epoch + index, outputs["rows"][index]
            logs = {name: float(value) for name, value in zip(names, row[:len(names)])}
            if validates:
                logs.update({f"val_{name}": float(value)
                             for name, value in zip(names, row[len(names):])})
            for callback in callbacks:
                if isinstance(callback, FailOnNaN):  # raises as it would have in Keras' loop
                    callback.on_train_batch_end(last_call_end, logs)
                    callback.on_epoch_end(epoch, logs)
            history.on_epoch_end(epoch, logs)
        if rule is not None:
            rule.leave(stopping, outputs["stopping"])
        model.stop_training = bool(outputs["stop"])
        model.optimizer.finalize_variable_values(model.trainable_weights)
        for callback in callbacks:
            callback.on_train_end(logs=logs)
        return history

    def _program_inputs(self, state, train, validation, settings_of=None):
        """The program's arguments for a fit from `state` on `train` (and `validation`).

        `settings_of`: the model whose rows' settings (`row_settings`) the
        fit trains with; by default the one this fit trains.
        """
        # The orders `ArrayBatches` serves epoch after epoch, drawn ahead. Keras'
        # `fit` draws one before its first epoch too (its epoch iterator's reset).
        orders = np.zeros((self.epoch_capacity, self.train_capacity), "int32")
        orders[:self.epochs, :train.num_rows] = train.next_orders(self.epochs)
        return (
            state,
            [variable.value for variable in self.model.metrics_variables],
            ({name: _padded(values, self.train_capacity) for name, values in train.inputs.items()},
             _padded(np.asarray(train.targets), self.train_capacity)),
            orders, np.int32(len(train)), self._validation_inputs(validation, train),
            np.int32(self.initial_epoch), np.int32(self.epochs), _stopping_inputs(self.rule),
            [np.float32(value) for value in read_settings(settings_of or self.model)],
        )

    def _later_inputs(self, folds):
        """The program's arguments of each later fit of `folds`, as this fit's would be.

        Each later fit is assumed to pass its fold's `training_batches` (with
        this fit's batch size and seed) and `validation_batches`, from the
        state its model starts from (copied into this model, or its own when
        it trains in itself); `FoldsAhead` checks the assumption.
        """
        later = []
        for fold_model, data, in_itself in folds:
            train = data.training_batches(self.train.batch_size, seed=self.train.seed)
            validation = data.validation_batches() if self.validation is not None else None
            if not isinstance(train, ArrayBatches) or (
                    validation is not None and not isinstance(validation, ArrayBatches)):
                return []
            if in_itself:  # built as its fit will build it, settings included
                keras_internals.build_for_fit(fold_model, train[0])
                state, settings_of = _state_values(fold_model), fold_model
            else:  # copied into this model: its state, this model's settings
                state, settings_of = _state_values(self.model, fold_model), None
            later.append(self._program_inputs(state, train, validation, settings_of))
        return later

    def _validation_inputs(self, validation, train):
        """`(rows of one batch, padded tail rows, tail rows in use, whether to validate)`.

        `None` when the program does not validate; zeros shaped like
        `train`'s rows when it does but this fit has no validation rows.
        """
        if not self.validation_main:
            return None
        source = validation if validation is not None else train
        rows = validation.num_rows if validation is not None else 0
        inputs = {name: values[:rows] for name, values in source.inputs.items()}
        targets = np.asarray(source.targets)[:rows]
        main, tail = slice(0, self.validation_main), slice(self.validation_main, None)
        return (({name: _padded(values[main], self.validation_main)
                  for name, values in inputs.items()}, _padded(targets[main], self.validation_main)),
                ({name: _padded(values[tail], self.validation_tail)
                  for name, values in inputs.items()}, _padded(targets[tail], self.validation_tail)),
                np.int32(max(rows - self.validation_main, 0)), np.bool_(validation is not None))


@dataclasses.dataclass(frozen=True)
class _StoppingRule:
    """`keras.callbacks.EarlyStopping`'s settings, as the compiled program applies them.

    They are the program's arguments (`_stopping_inputs`), not part of it.
    """

    index: int  # of the monitored value in an epoch's row of the program's logs
    greater: bool  # improvements are greater values
    min_delta: float  # signed as Keras signs it
    patience: int
    baseline: "float | None"
    start_from_epoch: int
    restore_best_weights: bool

    @classmethod
    def of(cls, callback, names, validates, program_validates):
        """The rule of `callback` (`None`: none, or its monitor is not logged).

        Args:
            callback: the fit's `EarlyStopping`, or `None`.
            names: the metrics' names, in a row's order.
            validates: bool, whether the fit validates.
            program_validates: bool, whether the program's rows hold
                validation results (of this fit or of others).
        """
        if callback is None:
            return None
        logged = [*names, *(f"val_{name}" for name in names if validates)]
        if callback.monitor not in logged:
            return None
        row = [*names, *(f"val_{name}" for name in names if program_validates)]
        return cls(index=row.index(callback.monitor),
                   greater=callback.monitor_op is keras.ops.greater,
                   min_delta=float(callback.min_delta), patience=int(callback.patience),
                   baseline=None if callback.baseline is None else float(callback.baseline),
                   start_from_epoch=int(callback.start_from_epoch),
                   restore_best_weights=bool(callback.restore_best_weights))

    def leave(self, callback, state):
        """Leaves `callback` as Keras' loop would have: its `on_train_end` restores the weights."""
        callback.wait = int(state["wait"])
        callback.stopped_epoch = int(state["stopped_epoch"])
        callback.best = float(state["best"]) if state["has_best"] else None
        callback.best_epoch = int(state["best_epoch"])
        callback.best_weights = None
        if self.restore_best_weights and state["has_best_weights"]:
            callback.best_weights = [np.asarray(weight) for weight in state["best_weights"]]


def _stopping_inputs(rule):
    """The program's early-stopping arguments: `rule`'s settings, or "never stop" for `None`."""
    enabled = rule is not None
    rule = rule or _StoppingRule(index=0, greater=False, min_delta=0.0, patience=0, baseline=None,
                                 start_from_epoch=0, restore_best_weights=False)
    return {"enabled": np.bool_(enabled), "index": np.int32(rule.index),
            "greater": np.bool_(rule.greater), "min_delta": np.float32(rule.min_delta),
            "patience": np.int32(rule.patience), "has_baseline": np.bool_(rule.baseline is not None),
            "baseline": np.float32(rule.baseline or 0.0),
            "start_from_epoch": np.int32(rule.start_from_epoch),
            "restore_best_weights": np.bool_(rule.restore_best_weights)}


@dataclasses.dataclass(frozen=True)
class _ProgramShape:
    """What a compiled program depends on besides its inputs' shapes."""

    names: tuple  # of the metrics' results, in a row's order
    fails_on_nan: bool
    validates: bool
    weight_positions: tuple  # of `model.weights` in the state
    batch_size: int
    max_batches: int
    validation_tail: int


def _program(model, shape):
    """The `_Program` training `model` for `shape`, compiled once per input shapes."""
    programs = _programs.setdefault(model, {})
    if shape not in programs:
        # Through a weak reference: a program holding its model would keep it
        # (and itself) alive in `_programs` for as long as the process runs.
        programs[shape] = _Program(_make_program(weakref.proxy(model), shape))
    return programs[shape]


class _Program:
    """A jitted program, compiled with `COMPILER_OPTIONS` once per shapes of its inputs."""

    def __init__(self, jitted):
        self.jitted = jitted
        self.compiled = {}

    def compiled_for(self, inputs):
        """The executable for `inputs` (a tuple of the program's arguments), compiled on first use."""
        import jax

        key = str(jax.tree.map(lambda value: (np.shape(value), np.result_type(value)), inputs))
        if key not in self.compiled:
            self.compiled[key] = _compile_quickly(self.jitted.lower(*inputs))
        return self.compiled[key]

    def run(self, inputs):
        """Runs the program on `inputs`; returns its outputs as numpy arrays."""
        return _run(self.compiled_for(inputs), inputs)


def _run(executable, inputs):
    return _numpy(executable(*inputs))


class FoldsAhead:
    """Runs the programs of a trial's later folds ahead, side by side with the first fold's.

    A trial's folds train one after the other in one model, each from its
    own fold model's state (`tuning.fold_models`), with one compiled program.
    On a CPU, one run of such a program keeps its thread pool busy waiting
    between small operations: on two cores, two runs side by side finish in
    the time of one (the same outputs, bit for bit). So when the first fit in
    `model` has compiled the program, it starts the runs of the later folds
    too, from the arguments their fits will pass (their fold models' states,
    their folds' `training_batches` and `validation_batches` with its batch
    size and seed), on `workers` threads beside its own. A later fit takes
    the outputs of the run whose arguments equal its own, array for array,
    and runs the program itself otherwise; runs nobody took are cancelled
    when the block ends. Everything else, the callbacks and the template's
    own code included, runs as before, fold after fold.

    Args:
        model: the compiled `keras.Model` the folds train in.
        folds: list of `(fold_model, data, in_itself)` of the later folds:
            the model whose state a fold's fit starts from, its
            `templates.recipe.TemplateData`, and whether it trains in
            itself with `model`'s program (`fused(..., program_of=model)`)
            rather than copied into `model`.
        workers: int, programs run at once; 1 runs each fold's when it fits.

    Example:

    >>> with FoldsAhead(model=None, folds=[], workers=2) as ahead:
    ...     ahead.started
    False
    """

    def __init__(self, model, folds, workers):
        self.model = model
        self.folds = list(folds)
        self.workers = workers
        self.started = False
        self._pool = None
        self._pending = []  # (program, inputs, future) of the runs started ahead

    def __enter__(self):
        return self

    def __exit__(self, *exception):
        self.close()

    def outputs(self, model, program, inputs, later_inputs):
        """The outputs of `program` on `inputs`: taken from a run started ahead, or run now.

        Args:
            model: the model the calling fit trains.
            program: its `_Program`.
            inputs: the program's arguments for this fit.
            later_inputs: callable taking `folds`, returning the arguments of
                each later fold's fit (`_FusedFit._later_inputs`).
        """
        for index, (started_program, started_inputs, future) in enumerate(self._pending):
            if started_program is program and _same_arguments(started_inputs, inputs):
                del self._pending[index]
                return future.result()
        executable = program.compiled_for(inputs)
        if self.started or model is not self.model or self.workers < 2 or not self.folds:
            return _run(executable, inputs)
        self.started = True
        later = later_inputs(self.folds)
        if not later:
            return _run(executable, inputs)
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="fold")
        own = self._pool.submit(_run, executable, inputs)
        self._pending = [(program, arguments, self._pool.submit(_run, executable, arguments))
                         for arguments in later]
        return own.result()

    def close(self):
        """Cancels the runs nobody took and waits for those under way."""
        for _, _, future in self._pending:
            future.cancel()
        self._pending = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _same_arguments(first, second):
    """Whether two argument trees hold equal arrays (shapes, dtypes, values) in the same places."""
    import jax

    if jax.tree.structure(first) != jax.tree.structure(second):
        return False
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True):
        a, b = np.asarray(a), np.asarray(b)
        if a.dtype != b.dtype or not np.array_equal(a, b):
            return False
    return True


def _make_program(model, shape):
    import jax
    import jax.numpy as jnp

    width = len(shape.names)
    logged = width * (2 if shape.validates else 1)
    loss = shape.names.index("loss") if "loss" in shape.names else None

    def results(metrics):
        with keras.StatelessScope(state_mapping=list(zip(model.metrics_variables, metrics))):
            logs = _flat(model.get_metrics_result())
        return jnp.stack([jnp.asarray(logs[name], "float32") for name in shape.names])

    def train_epoch(state, metrics, train, order, batches):
        def step(carry, index):
            def run(carry):
                rows = jax.lax.dynamic_slice_in_dim(order, index * shape.batch_size,
                                                    shape.batch_size)
                batch = jax.tree.map(lambda values: jnp.take(values, rows, axis=0), train)
                _, new = model.train_step((*carry[0], carry[1]), batch)
                return _like(((*new[:3],), new[3]), carry)
            return jax.lax.cond(index < batches, run, lambda carry: carry, carry), None

        return jax.lax.scan(step, (state, metrics), jnp.arange(shape.max_batches))[0]

    def validate(state, metrics, validation):
        main, tail, tail_rows, _ = validation
        trainable, non_trainable, optimizer = state
        _, (_, non_trainable, metrics) = model.test_step((trainable, non_trainable, metrics),
                                                         main)

        def one_row(carry, index):
            def run(carry):
                row = jax.tree.map(lambda values: jax.lax.dynamic_slice_in_dim(values, index, 1),
                                   tail)
                _, (_, *new) = model.test_step((trainable, *carry), row)
                return _like(tuple(new), carry)
            return jax.lax.cond(index < tail_rows, run, lambda carry: carry, carry), None

        if shape.validation_tail:
            (non_trainable, metrics), _ = jax.lax.scan(one_row, (non_trainable, metrics),
                                                       jnp.arange(shape.validation_tail))
        return (trainable, non_trainable, optimizer), metrics

    def weights(state):
        return [state[group][index] for group, index in shape.weight_positions]

    def stop_early(stopping, row, epoch, state, rule):
        """`EarlyStopping.on_epoch_end`, as arrays; `rule` holds `_stopping_inputs`."""
        current = jax.lax.dynamic_index_in_dim(row, rule["index"], keepdims=False)

        def better(value, reference):
            value = value - rule["min_delta"]
            return jnp.where(rule["greater"], value > reference, value < reference)

        eligible = rule["enabled"] & (epoch >= rule["start_from_epoch"])
        restores = rule["restore_best_weights"]
        new = dict(stopping)
        first = restores & eligible & ~stopping["has_best_weights"]
        new["best_epoch"] = jnp.where(first, epoch, stopping["best_epoch"])
        new["has_best_weights"] = stopping["has_best_weights"] | (restores & eligible)
        wait = jnp.where(eligible, stopping["wait"] + 1, stopping["wait"])
        improved = eligible & (~stopping["has_best"] | better(current, stopping["best"]))
        new["best"] = jnp.where(improved, current, stopping["best"])
        new["has_best"] = stopping["has_best"] | improved
        new["best_epoch"] = jnp.where(improved, epoch, new["best_epoch"])
        # Copied in a branch, not selected weight by weight: XLA then compiles
        # no kernel per weight for it (a tenth of a 3-layer program's), and
        # an epoch that keeps the best weights copies none.
        new["best_weights"] = jax.lax.cond(first | (restores & improved),
                                           lambda: weights(state),
                                           lambda: stopping["best_weights"])
        beats_baseline = ~rule["has_baseline"] | better(current, rule["baseline"])
        new["wait"] = jnp.where(improved & beats_baseline, 0, wait)
        stop = eligible & ~improved & (wait >= rule["patience"]) & (epoch > 0)
        new["stopped_epoch"] = jnp.where(stop, epoch, stopping["stopped_epoch"])
        return new, stop

    def program(state, metrics_reset, train, orders, batches, validation, first_epoch,
                epoch_limit, rule, settings):
        with settings_as(model, settings):  # the rows' settings, traced as arguments
            return train_all(state, metrics_reset, train, orders, batches, validation,
                             first_epoch, epoch_limit, rule)

    def train_all(state, metrics_reset, train, orders, batches, validation, first_epoch,
                  epoch_limit, rule):
        epochs = orders.shape[0]
        stopping = {"wait": jnp.int32(0), "stopped_epoch": jnp.int32(0),
                    "best": jnp.float32(0), "has_best": jnp.bool_(False),
                    "best_epoch": jnp.int32(0), "has_best_weights": jnp.bool_(False),
                    "best_weights": weights(state)}
        carry = {"index": jnp.int32(0), "state": state, "metrics": metrics_reset,
                 "rows": jnp.zeros((epochs, logged), "float32"), "stop": jnp.bool_(False),
                 "finite": jnp.bool_(True), "stopping": stopping}

        def going_on(carry):
            return (carry["index"] < epoch_limit) & ~carry["stop"] & carry["finite"]

        def epoch_step(carry):
            index = carry["index"]
            state, metrics = train_epoch(carry["state"], metrics_reset, train, orders[index],
                                         batches)
            row = results(metrics)
            if shape.validates:  # this fit's validation, or none (`validation[3]`)
                state, metrics = jax.lax.cond(
                    validation[3],
                    lambda: _like(validate(state, metrics_reset, validation),
                                  (state, metrics_reset)),
                    lambda: (state, metrics_reset))
                row = jnp.concatenate([row, results(metrics)])
            new = {**carry, "index": index + 1, "state": state, "metrics": metrics,
                   "rows": carry["rows"].at[index].set(row)}
            new["stopping"], new["stop"] = stop_early(carry["stopping"], row,
                                                      first_epoch + index, state, rule)
            if shape.fails_on_nan and loss is not None:
                new["finite"] = jnp.all(jnp.isfinite(row[loss::width]))
            return _like(new, carry)

        carry = jax.lax.while_loop(going_on, epoch_step, carry)
        return {"state": carry["state"], "metrics": carry["metrics"], "rows": carry["rows"],
                "epochs_run": carry["index"], "stop": carry["stop"],
                "stopping": carry["stopping"]}

    return jax.jit(program)


def row_settings(model):
    """The float settings of `model` a template computes from its rows, as `(owner, name)`.

    Those `tuning.fold_models.LAYER_SETTINGS` and `METRIC_SETTINGS` name
    (`keras.layers.Rescaling`'s `scale` and `offset` when each is one
    number, `DataLoss`' `weight`), and each compiled loss weight (owner the
    model, name its position): the regression template sets them from the
    training rows' target mean and deviation. The compiled program takes
    them as arguments (`read_settings`, `settings_as`).

    Args:
        model: a `keras.Model` built as `fit` builds it (`keras_internals.build_for_fit`).

    Returns:
        list of `(owner, name)`, in one order for models of one architecture.
    """
    owners = [(layer, fold_models.LAYER_SETTINGS)
              for layer in keras_internals.nested_layers(model)]
    owners += [(metric, fold_models.METRIC_SETTINGS)
               for metric in keras_internals.compiled_metrics(model)]
    settings = []
    for owner, table in owners:
        names = table.get(type(owner).__name__, ())
        if all(isinstance(getattr(owner, name), (int, float)) for name in names):
            settings += [(owner, name) for name in names]
    settings += [(model, position)
                 for position, weight in enumerate(keras_internals.compiled_loss_weights(model))
                 if isinstance(weight, (int, float))]
    return settings


def read_settings(model):
    """The values of `row_settings(model)`, as floats."""
    return [float(_get_setting(owner, name)) for owner, name in row_settings(model)]


@contextlib.contextmanager
def settings_as(model, values):
    """While open, `row_settings(model)` hold `values` (a compiled program's arguments)."""
    settings = row_settings(model)
    old = [_get_setting(owner, name) for owner, name in settings]
    try:
        for (owner, name), value in zip(settings, values, strict=True):
            _set_setting(owner, name, value)
        yield
    finally:
        for (owner, name), value in zip(settings, old, strict=True):
            _set_setting(owner, name, value)


def _get_setting(owner, name):
    if isinstance(name, int):  # the model's compiled loss weight at that position
        return keras_internals.compiled_loss_weights(owner)[name]
    return getattr(owner, name)


def _set_setting(owner, name, value):
    if isinstance(name, int):
        keras_internals.set_compiled_loss_weight(owner, name, value)
    else:  # past Keras' attribute tracking: a traced value is no state of the layer
        object.__setattr__(owner, name, value)


def _compile_quickly(lowered):
    """`lowered.compile()` with `COMPILER_OPTIONS`, or with XLA's defaults where that fails.

    An XLA release that does not know an option refuses the compilation
    (this one says "No such compile option"; the wording and the error's
    class vary between releases), so any failure with the options is
    retried with XLA's defaults, whose own error, if any, is raised.
    """
    if COMPILER_OPTIONS:
        try:
            return lowered.compile(compiler_options=COMPILER_OPTIONS)
        except Exception:  # noqa: BLE001, S110 - retried below with XLA's defaults
            pass
    return lowered.compile()


def _like(new, old):
    """`new` with the structure (lists, tuples) and dtypes of `old`, as `lax` loops need."""
    import jax

    leaves = jax.tree.leaves(new)
    structure = jax.tree.structure(old)
    olds = jax.tree.leaves(old)
    return jax.tree.unflatten(structure, [leaf.astype(reference.dtype)
                                          for leaf, reference in zip(leaves, olds, strict=True)])


def _state_variables(model):
    """The variable lists of Keras' training state on JAX, in `train_step`'s order."""
    return (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)


def _state_values(model, source=None):
    """The values of `model`'s training state, in `_state_variables` order.

    With `source`, a model of the same architecture, the values `model`
    would hold once `tuning.fold_models.copy_state(source, model)` had run.
    """
    if source is None:
        return [[variable.value for variable in variables] for variables in _state_variables(model)]
    positions = {id(variable): index
                 for index, variable in enumerate(fold_models.training_state(model))}
    values = [variable.value for variable in fold_models.training_state(source)]
    return [[values[positions[id(variable)]] for variable in variables]
            for variables in _state_variables(model)]


def _weight_positions(model):
    """Where each of `model.weights` is in the state: `(0 or 1, index)`, trainable or not."""
    positions = {}
    for group, variables in enumerate(_state_variables(model)[:2]):
        for index, variable in enumerate(variables):
            positions[id(variable)] = (group, index)
    return tuple(positions[id(weight)] for weight in model.weights)


def _padded(values, rows):
    """`values` with zero rows appended up to `rows` (never read: padding for one shape)."""
    values = np.asarray(values)
    missing = rows - len(values)
    if missing <= 0:
        return values
    return np.concatenate([values, np.zeros((missing, *values.shape[1:]), values.dtype)])


def _metric_names(model):
    """The names of `model.get_metrics_result()`, flattened, read from a trace: no compilation."""
    import jax

    try:
        return list(_flat(jax.eval_shape(model.get_metrics_result)))
    except Exception:  # noqa: BLE001 - a result that is no array: computed eagerly
        return list(_flat(model.get_metrics_result()))


def _flat(logs):
    """Keras' nested metric results as one flat dict."""
    flat = {}
    for name, value in logs.items():
        if isinstance(value, dict):
            flat.update(_flat(value))
        else:
            flat[name] = value
    return flat


def _numpy(outputs):
    import jax

    return jax.tree.map(np.asarray, outputs)
