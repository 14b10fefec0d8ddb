"""Sans-IO, Go-exact: request type, Go's HTTP rules, fast recogniser, renderers, WebSocket, PROXY."""
