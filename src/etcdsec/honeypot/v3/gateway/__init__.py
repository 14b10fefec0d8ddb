"""etcd's v3 JSON gateway (grpc-gateway): request reading, jsonpb rendering, routes."""
