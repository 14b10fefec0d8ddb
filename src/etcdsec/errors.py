"""Errors that the CLI turns into a one-line message and a non-zero exit."""


class UserError(Exception):
    """Bad input from the user: printed as `etcdsec: error: <message>`, exit status 2."""

    exit_code = 2


class StoreError(UserError):
    """The database cannot be opened or written (locked, gone, disk full)."""

    exit_code = 3


class ClusterError(UserError):
    """The Dask cluster cannot run the scan (scheduler unreachable, no workers, a worker without etcdsec)."""

    exit_code = 3
