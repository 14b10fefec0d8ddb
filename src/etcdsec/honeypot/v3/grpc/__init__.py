"""etcd's gRPC API over HTTP/2, sans-IO: handshake, connection, hpack cache, gogo errors."""
