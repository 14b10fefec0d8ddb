"""etcd's gRPC API over HTTP/2: handshake, connection, asyncio shell, hpack cache, gogo errors."""
