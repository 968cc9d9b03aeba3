"""Errors a user can act on: the CLI prints their message alone, never a traceback."""


class HemabenchError(Exception):
    """Base class for errors whose message tells the user what is wrong and what to do."""


class DatasetNotFound(HemabenchError):
    """A dataset root is missing or holds nothing usable."""
