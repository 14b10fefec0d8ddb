"""One session of PyPI etcd3gw (the JSON gateway) against HOST PORT; prints what it saw as JSON."""

import json
import sys

import etcd3gw

host, port = sys.argv[1], int(sys.argv[2])
c = etcd3gw.client(host=host, port=port, api_path="/v3/", timeout=5)
out: dict = {}
out["put"] = c.put("/gw/a", "1")
out["get"] = c.get("/gw/a")
c.put("/gw/b", "2")
out["prefix"] = sorted((v.decode() if isinstance(v, bytes) else v, m["key"]) for v, m in c.get_prefix("/gw/"))
out["all_keys"] = sorted(m["key"] for _, m in c.get_all())
out["delete"] = c.delete("/gw/b")
out["delete_missing"] = c.delete("/gw/none")
out["replace_ok"] = c.replace("/gw/a", "1", "3")
out["replace_bad"] = c.replace("/gw/a", "1", "4")
out["create_new"] = c.create("/gw/c", "new")
out["create_exists"] = c.create("/gw/c", "again")
lease = c.lease(60)
c.put("/gw/leased", "x", lease=lease)
out["lease_ttl_ok"] = 55 <= lease.ttl() <= 60
out["lease_keys"] = lease.keys()
out["refresh"] = lease.refresh()
out["revoke"] = lease.revoke()
out["after_revoke"] = c.get("/gw/leased")
out["members"] = [m["name"] for m in c.members()]
out["status_version"] = c.status()["version"]
rev = int(c.status()["header"]["revision"])
out["txn"] = c.transaction({"compare": [], "success": [{"request_range": {"key": "L2d3L2E="}}]})["succeeded"]
try:
    c.get("/gw/a", metadata=True, revision=rev + 100)
except Exception as e:  # report, do not crash: the caller compares outputs
    out["future_rev"] = type(e).__name__
print(json.dumps(out, default=str))
