"""Errors a user can fix: bad options, bad configuration, bad input files.

Their message is one line naming the problem; the CLI prints it and exits 2.
"""


class InputError(ValueError):
    """Input that cannot be used as given. One line, naming the option, key or file."""
