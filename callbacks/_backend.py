"""Backend guard shared by the callbacks of this package."""

import keras

SUPPORTED_BACKENDS = ("tensorflow",)


def require_supported_backend(callback_name):
    """Raises a clear error when the active Keras backend is not supported.

    Args:
        callback_name: str, the name of the callback asking, used in the message.

    Raises:
        RuntimeError: if `keras.backend.backend()` is not one of
            `SUPPORTED_BACKENDS`.

    Example:

    >>> require_supported_backend("GradientMonitor")  # on TensorFlow: no error
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        raise RuntimeError(
            f"{callback_name} supports the Keras backends "
            f"{', '.join(SUPPORTED_BACKENDS)}; the active backend is "
            f"'{backend}'. Set KERAS_BACKEND=tensorflow before importing keras."
        )
