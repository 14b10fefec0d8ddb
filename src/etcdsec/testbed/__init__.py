"""Loopback test bed: real etcd servers, a throwaway PKI and misbehaving fakes.

Used by the test suite, the demo and the benchmarks. Everything here binds to 127.0.0.0/8 only.
"""
