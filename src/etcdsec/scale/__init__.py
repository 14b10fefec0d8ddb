"""Running etcdsec's work on Dask: the plumbing `scan` and `monitor exposure` share (docs/scale.md).

`cluster` starts a local process cluster or connects to a running scheduler (one-line errors), checks
that every worker runs this etcdsec, and holds the options' rules (`--workers`, `--cluster` needs
PostgreSQL); `worker_setup` is preloaded into local workers.
"""
