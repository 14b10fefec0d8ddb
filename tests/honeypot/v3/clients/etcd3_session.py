"""One session of PyPI etcd3 (gRPC) against HOST PORT; prints what it saw as JSON.

Run in a subprocess: etcd3's old generated code needs PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python
before protobuf is imported.
"""

import json
import os
import sys
import threading

os.environ["PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION"] = "python"
import etcd3

host, port = sys.argv[1], int(sys.argv[2])
c = etcd3.client(host=host, port=port, timeout=5)
out = {}
c.put("/e3/a", "1")
out["get"] = c.get("/e3/a")[0].decode()
c.put("/e3/b", "2")
out["prefix"] = sorted((v.decode(), m.key.decode()) for v, m in c.get_prefix("/e3/"))
out["delete"] = c.delete("/e3/b")
out["replace_ok"] = c.replace("/e3/a", "1", "3")
out["replace_bad"] = c.replace("/e3/a", "1", "4")
lease = c.lease(60)
c.put("/e3/leased", "x", lease=lease)
out["lease_ttl"] = lease.granted_ttl
out["lease_keys"] = [k.decode() for k in lease.keys]
out["refresh"] = [r.TTL for r in lease.refresh()]
lease.revoke()
out["after_revoke"] = c.get("/e3/leased")[0]
out["members"] = [m.name for m in c.members]
st = c.status()
out["status_version"] = st.version
ok, resps = c.transaction(compare=[c.transactions.version("/e3/a") > 0],
                          success=[c.transactions.get("/e3/a")], failure=[])
out["txn"] = [ok, [[v.decode() for v, _ in r] for r in resps]]
events, cancel = c.watch("/e3/w")  # then another client writes the key
threading.Timer(0.3, lambda: etcd3.client(host=host, port=port).put("/e3/w", "seen")).start()
for ev in events:
    out["watch"] = [type(ev).__name__, ev.key.decode(), ev.value.decode()]
    cancel()
    break
try:
    c.get("/e3/a", serializable=True)
    out["ok"] = True
except Exception as e:  # report, do not crash: the caller compares outputs
    out["err"] = repr(e)
print(json.dumps(out))
