"""The asyncio shells: listener, guard, the HTTP/1 connection and the life of one request."""
