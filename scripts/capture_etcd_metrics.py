"""Capture a real etcd's /metrics family set as persona data (HELP/TYPE exact, label sets, order).

    PYTHONPATH=. .venv/bin/python scripts/capture_etcd_metrics.py 3.5 src/etcdsec/honeypot/personas/metrics/3.5.1.json

Starts the etcd of that version on a free loopback address (etcdsec.testbed), sends the traffic a
client would (three puts and a prefix get with etcdctl) so the label-vector families exist, reads
/metrics, and writes the families compactly: grpc_server_* as a method list and code list (their
samples are the product), histograms as `le` bounds plus one row per series. The values are the
fresh server's; the honeypot replaces the ones that must behave (etcdsec.honeypot.endpoints.etcd_metrics).
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from etcdsec.honeypot.endpoints.etcd_metrics import MetricsData, render_static
from etcdsec.testbed.etcd import EtcdConfig, EtcdServer
from tests.support.promtext import Family, label_dict, parse

GRPC = ("grpc_server_handled_total", "grpc_server_msg_received_total", "grpc_server_msg_sent_total",
        "grpc_server_started_total")


def traffic(server: EtcdServer) -> None:
    ctl = [str(server.etcdctl), f"--endpoints={server.client_url}"]
    for i in range(3):
        subprocess.run([*ctl, "put", f"k{i}", "v" * 100], env={"ETCDCTL_API": "3"}, capture_output=True,
                       timeout=20, check=True)
    subprocess.run([*ctl, "get", "k", "--prefix"], env={"ETCDCTL_API": "3"}, capture_output=True, timeout=20,
                   check=True)


def number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def compact(families: list[Family]) -> dict[str, object]:
    started = next(f for f in families if f.name == "grpc_server_started_total")
    methods = [[d["grpc_service"], d["grpc_method"], d["grpc_type"]]
               for d in (label_dict(labels) for _, labels, _ in started.samples)]
    handled = next(f for f in families if f.name == "grpc_server_handled_total")
    codes = sorted({label_dict(labels)["grpc_code"] for _, labels, _ in handled.samples})
    out = []
    for fam in families:
        if fam.name in GRPC:
            out.append([fam.name, fam.type, fam.help, "grpc"])
        elif fam.type == "histogram":
            les: list[str] = []
            series: list[list[object]] = []
            for name, labels, value in fam.samples:
                inner = labels[1:-1]
                if name.endswith("_bucket"):
                    le = label_dict(labels)["le"]
                    base = inner.rsplit(',le="', 1)[0] if ",le=" in inner else ""
                    if not series or series[-1][0] != base or series[-1][3] is not None:
                        series.append([base, [], None, None])
                    if len(series) == 1:
                        les.append(le)
                    series[-1][1].append(number(value))  # type: ignore[union-attr]
                elif name.endswith("_sum"):
                    series[-1][2] = number(value)
                else:
                    series[-1][3] = number(value)
            out.append([fam.name, fam.type, fam.help, series, les])
        else:
            out.append([fam.name, fam.type, fam.help,
                        [[name[len(fam.name):], labels, number(value)] for name, labels, value in fam.samples]])
    return {"grpc_methods": methods, "grpc_codes": codes, "families": out}


def v2_traffic(server: EtcdServer) -> None:
    """A v2 client's first requests: a miss (404), a set, a get, a delete."""
    for method, path, body in (("GET", "/v2/keys/missing", None), ("PUT", "/v2/keys/a", b"value=1"),
                               ("GET", "/v2/keys/a", None), ("DELETE", "/v2/keys/a", None)):
        req = urllib.request.Request(server.client_url + path, data=body, method=method)
        try:
            urllib.request.urlopen(req, timeout=10).read()
        except urllib.error.HTTPError:
            pass


def v2_families(version: str, known: set[str]) -> list[list[object]]:
    """Families an etcd with --enable-v2 adds once a v2 client used it: name, type, help, `le` bounds."""
    with EtcdServer(EtcdConfig(version=version, enable_v2=True)) as server:
        traffic(server)
        v2_traffic(server)
        with urllib.request.urlopen(server.client_url + "/metrics", timeout=10) as resp:
            families = parse(resp.read().decode())
    out: list[list[object]] = []
    for fam in families:
        if fam.name not in known:
            les = list(dict.fromkeys(label_dict(lb)["le"] for n, lb, _ in fam.samples if n.endswith("_bucket")))
            out.append([fam.name, fam.type, fam.help, les])
    return out


def main(version: str, target: Path) -> None:
    with EtcdServer(EtcdConfig(version=version)) as server:
        traffic(server)
        with urllib.request.urlopen(server.client_url + "/metrics", timeout=10) as resp:
            text = resp.read().decode()
    data: dict[str, object] = {"source": ""}
    data.update(compact(parse(text)))
    data["v2_families"] = v2_families(version, {f.name for f in parse(text)})
    data["source"] = f"etcd {version} /metrics on loopback after 3 puts and a get (scripts/capture_etcd_metrics.py)"
    target.parent.mkdir(parents=True, exist_ok=True)
    # one family a line: a new capture diffs family by family
    head = {k: v for k, v in data.items() if k != "families"}
    lines = [json.dumps(head, separators=(",", ":"))[:-1] + ',"families":[']
    lines.append(",\n".join(json.dumps(f, separators=(",", ":")) for f in data["families"]))  # type: ignore[union-attr]
    target.write_text("\n".join(lines) + "]}\n")
    again = render_static(MetricsData.from_json(data))
    # grpc_server_* values are the sensor's own traffic (kept as zeros): compare them as zeros
    text = "".join(line.rsplit(" ", 1)[0] + " 0\n" if line.startswith("grpc_server_") else line + "\n"
                   for line in text.splitlines())
    if again != text:  # the compact form must give back the very text etcd sent
        for a, b in zip(again.splitlines(), text.splitlines(), strict=False):
            if a != b:
                sys.exit(f"round trip differs:\n ours {a}\n etcd {b}")
        sys.exit("round trip differs in length")
    print(f"{target}: {len(data['families'])} families, {len(text)} bytes of etcd text")  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
