"""An etcd honeypot: answers like a chosen etcd version and records everything it is sent.

Rooms by role: `core/` (persona, identity, session, events, honeytokens, limits, the bait) and
`context.SensorContext` one of each for a running sensor; `wire/` (sans-IO, Go-exact bytes);
`serve/` (asyncio shells: listener, guard, the HTTP/1 connection); `endpoints/` (the decoy's non-key
endpoints); `v2/`; `v3/` (with `gateway/` and `grpc/`); `persist/` (the keyspace across restarts);
`routes`, `sensor`, `sensor_metrics`, `workers` on top.
"""
