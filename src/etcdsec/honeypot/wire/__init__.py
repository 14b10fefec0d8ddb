"""Sans-IO, Go-exact: request type, Go's HTTP rules, fast recogniser, renderers, chunked reader, WebSocket, PROXY."""
