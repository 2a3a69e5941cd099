"""The error every input check raises: bad input that a retry cannot fix (exit 2, HTTP 400)."""


class InputError(ValueError):
    """Input that cannot be turned into a model input; the message says why."""
