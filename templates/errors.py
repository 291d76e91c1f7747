"""The error the templates raise for bad input."""


class TemplateError(ValueError):
    """Bad input to a template: the message names the value and what was expected.

    The command-line entry points print it as one line, `error: <message>`,
    and exit with status 2.

    Example:

    >>> raise TemplateError("Received batch_size=0; expected an integer >= 1.")
    Traceback (most recent call last):
    ...
    templates.errors.TemplateError: Received batch_size=0; expected an integer >= 1.
    """


def shorten(names, limit=8):
    """Quotes up to `limit` names for an error message, then says how many more.

    Example:

    >>> shorten(["a", "b", "c"], limit=2)
    "'a', 'b' and 1 more"
    """
    names = list(names)
    shown = ", ".join(repr(str(name)) for name in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
