"""Tests of etcdsec monitor against real etcd, PostgreSQL and Alertmanager on loopback."""
