"""Tests of etcdsec.events: the event id registry and the shared command-line options."""
