"""An etcd honeypot: answers like a chosen etcd version and records everything it is sent.

`core/` holds the shared pieces (persona, identity, session, events, honeytokens, limits) and
`context.SensorContext` one of each for a running sensor; the listener sniffs HTTP/1.1, HTTP/2 and
TLS on one port; `v3/` serves the gateway and gRPC.
"""
