"""The one exception type users see: a single line that names the file and what is wrong."""


class ProbekitError(Exception):
    """Bad input or state the user can fix; the CLI prints it as one line and exits non-zero."""
