"""User-facing errors: anything a user can fix (bad file, bad option) raises DreamorError.

The CLI prints ``error: <message>`` on one line and exits with status 2; the server turns
it into an ``error`` reply. Anything else is a bug and keeps its traceback.
"""


class DreamorError(Exception):
    """An error caused by the user's input, with a message that says what to do."""


class InputFileError(DreamorError):
    """A file that cannot be read as what it claims to be (BVH, clip .npz, ...)."""


class OutputFileError(DreamorError):
    """A file or folder that cannot be written where the user asked (a file in the way, no permission, ...)."""
