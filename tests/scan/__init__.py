"""Tests of `etcdsec scan`: targets, permutation, imports, the resumable sweep and its CLI."""
