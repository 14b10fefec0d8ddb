"""The honeypot's ground floor: what every layer shares and nothing that does I/O on the wire.

One module a role: `persona` (which etcd version to be), `identity` (this deployment's ids, kept
across restarts), `session` (one connection), `eventsink` (events out to etcdsec.events),
`honeytokens` (planted credentials and their matcher), `limits` (the sensor's caps), `bait` (the
Kubernetes keyspace and its tokens, with `kubeproto`), `events_fields` (bodies in events). The object
that holds one of each for a running sensor is `etcdsec.honeypot.context.SensorContext`.
"""
