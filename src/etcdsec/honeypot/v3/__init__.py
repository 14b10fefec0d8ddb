"""The honeypot's etcd v3 side: state, JSON gateway and gRPC over HTTP/2.

Layers, each sans-IO except the thin shell in serve/grpc_shell.serve_h2:

- mvcc, leases, watch, heartbeat, state: the world (revisions, history, leases, watches, the
  control plane's background writes), one `Namespace` per source or one shared.
- call, service, admin: etcd's methods and their exact errors (errors), auth as etcd checks it.
- gateway/ (json_gateway, plain, jsonrequest, jsonpb; Go's parse errors in wire/go_json_errors):
  grpc-gateway's JSON, 3.4/3.5 error bodies.
- grpc/ (server, handshake, hpack_cache, gogo_errors): gRPC on the `h2` state machine, grpc-go's
  framing, trailers and errors; serve/grpc_shell moves its bytes.
- etcdsec.proto (shared with the prober): etcd_v3.proto and the generated etcd_v3_pb2.py
  (regenerate with scripts/build_proto.py).
- Measured against real etcd 3.4.23 / 3.5.1 by the differential runner in tests/support/ (not shipped).
"""
