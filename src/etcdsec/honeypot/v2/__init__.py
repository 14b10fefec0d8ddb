"""etcd's v2 HTTP API and the v2 key store behind it."""
