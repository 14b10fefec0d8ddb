"""etcd's v3 API messages: `etcd_v3.proto` (the subset of etcd's own .proto files that etcdsec speaks)
and the protobuf module generated from it, `etcd_v3_pb2`, shared by the prober (`probe/v3api.py`) and
the honeypot's gRPC and gateway side (`honeypot/v3/`). The generated code is committed, so only
`protobuf` is needed at run time; `scripts/build_proto.py` regenerates it (dev-time, grpcio-tools).
`k8s_subset.proto`, `k8s_apps.proto` and `k8s_more.proto` (and their `_pb2` modules) hold the
Kubernetes types the honeypot's bait stores the way kube-apiserver does (`honeypot/core/kubeproto.py`).
"""
