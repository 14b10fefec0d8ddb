"""The asyncio shells: listener, guard, the HTTP/1 connection, the life of one request, gRPC bytes."""
