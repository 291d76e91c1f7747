"""Callbacks that make training trouble visible in any compiled Keras 3 model.

`GradientMonitor` (vanishing and exploding gradients), `ActivationMonitor`
(saturated and dead units), `LearningRateFinder` (the learning-rate range
test) and `OutputLossCheck` (output layer against loss and labels). The
monitors and the check need no arguments (they watch what `fit()` feeds the
model) and work on the TensorFlow, JAX and PyTorch backends.
"""

from callbacks.activation_monitor import ActivationMonitor
from callbacks.gradient_monitor import GradientMonitor
from callbacks.learning_rate_finder import LearningRateFinder
from callbacks.output_loss_check import (
    OutputLossCheck,
    OutputLossMismatchError,
    check_output_loss,
)

__all__ = [
    "ActivationMonitor",
    "GradientMonitor",
    "LearningRateFinder",
    "OutputLossCheck",
    "OutputLossMismatchError",
    "check_output_loss",
]
