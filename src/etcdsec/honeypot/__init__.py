"""An etcd honeypot: answers like a chosen etcd version and records everything it is sent.

`context` holds the shared pieces (persona, identity, events, honeytokens, limits); the listener
sniffs HTTP/1.1, HTTP/2 and TLS on one port; `v3/` serves the gateway and gRPC.
"""
