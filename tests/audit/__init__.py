"""Tests of `etcdsec audit`: parsers, fixture host trees, hostile files, single files and live processes."""
