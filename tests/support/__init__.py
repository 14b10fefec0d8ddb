"""Test kit, never shipped: loopback harnesses, fakes and real-server test beds for tests/ and bench/.

- harness.py: a honeypot sensor in a background thread (`BackgroundSensor`).
- fidelity.py, fidelity_grpc.py and corpus/: the differential runners (HTTP/1.1 and TLS; gRPC) that
  send the request corpora to real etcd and to the honeypot and compare
  (`.venv/bin/python -m tests.support.fidelity --show-diffs`).
- fakes.py: misbehaving servers (tarpits, garbage, resets) for the prober.
- postgres.py: a throwaway PostgreSQL server and the `pg_server` / `pg_url` fixtures.
- dask_cluster.py: a `dask scheduler` and `dask worker` processes on loopback (scan --cluster).
- shared_writer_child.py: the spawned writer processes of tests/store/test_shared_writers.py.

Real etcd, the throwaway PKI and loopback addresses stay in `etcdsec.testbed` (the demo runs them).
Import as `tests.support.<module>`; the repo root is on sys.path under pytest (pyproject `pythonpath`)
and with `python -m` from the repo root.
"""
