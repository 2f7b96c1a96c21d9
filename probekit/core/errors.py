"""The one exception type users see: a single line that names the file and what is wrong."""


class ProbekitError(Exception):
    """Bad input or state the user can fix; the CLI prints it as one line and exits non-zero."""


class AnalysisError(ProbekitError):
    """An analysis that does not keep its own declaration (a plug-in whose rows lack a column its table
    declares): the probe stops at the first unit that shows it, before the rest of the work."""
