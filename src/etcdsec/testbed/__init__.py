"""Loopback test bed: real etcd servers, a throwaway PKI and free loopback addresses.

It ships because `etcdsec demo` (and scripts/demo.sh) starts a real etcd with it at run time; the
tests and bench/ use it too. Test-only kit (the honeypot harness, fidelity runners and corpora,
misbehaving fakes, PostgreSQL) lives in tests/support/ and is not in the wheel. Everything here
binds to 127.0.0.0/8 only.
"""
