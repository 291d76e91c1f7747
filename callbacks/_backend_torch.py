"""PyTorch backend functions of the callbacks (see `callbacks._backend`).

Keras runs PyTorch eagerly: a train step is plain Python, called once per
batch, and weights are updated in place. PyTorch is imported where it is
used.
"""

import numpy as np


def make_train_function(model, step):
    """Builds a train function from `step` as Keras builds its own (eager)."""

    def function(data):
        return step(data[0])

    return function


class StepSums:
    """Keras allows one step per call on PyTorch: the sum is the step's value."""

    def __init__(self, keys):
        del keys

    def add(self, key, value):
        del key
        return value

    def train_function(self, model, step):
        return make_train_function(model, step)


def around_train_step(model, train_step, around):
    del model

    def step(data):
        return around(data, lambda: train_step(data))

    return step


def logs_of(result):
    """The logs dict of what a train function call returned."""
    return result


def adopt(model, result):
    """Nothing to do: the weights are in the model's variables."""
    del model, result


def is_ready(value):
    """Whether reading `value` would not wait: always (results come ready)."""
    del value
    return True


def peek_batch(args):
    (data,) = args
    return data[0], args


def release(model, args):
    del model, args


def sync(model):
    del model


def loss_and_gradients(model, variables):
    import torch

    metric_variables = list(model.metrics_variables)

    def compute(x, y):
        saved = [v.value.detach().clone() for v in metric_variables]
        y_pred = model(x, training=False)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=False)
        gradients = torch.autograd.grad(
            loss, [v.value for v in variables], allow_unused=True
        )
        with torch.no_grad():
            for variable, value in zip(metric_variables, saved):
                variable.assign(value)
        return loss.detach(), [None if g is None else g.detach() for g in gradients]

    return compute


def inference():
    import torch

    return torch.no_grad()


def to_numpy(tensor):
    if hasattr(tensor, "detach"):
        tensor = tensor.detach().cpu().numpy()
    return np.asarray(tensor)


def compiled(model, function):
    """`function` itself, run eagerly: see `callbacks._backend`."""
    del model
    return function
