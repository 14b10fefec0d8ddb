"""Bounded network I/O: an HTTP/1.1 client over h11 and TLS inspection."""
