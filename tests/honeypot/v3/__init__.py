"""Tests of the honeypot's v3 side: state, gateway, gRPC, fidelity against real etcd and real v3 clients."""
