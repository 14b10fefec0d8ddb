"""`etcdsec report` over a real scan of real etcd servers on loopback (SQLite and PostgreSQL)."""

import csv
import gzip
import io
import json
import subprocess
import sys

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from etcdsec.testbed.etcd import EtcdConfig
from tests.support.fakes import FakeServers


def etcdsec(*args, check=True):
    proc = subprocess.run([sys.executable, "-m", "etcdsec", *args], capture_output=True, text=True, timeout=180)
    if check and proc.returncode != 0:
        raise AssertionError(f"rc={proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def bed(etcd_factory, tmp_path_factory):
    """Two real etcd (3.5 open and named like a control plane, 3.4 with v2) and a non-etcd HTTP service."""
    kube = etcd_factory("scan-open-3.5", EtcdConfig(version="3.5", name="kube-master-1"))
    plain = etcd_factory("report-3.4-v2", EtcdConfig(version="3.4", name="infra0", enable_v2=True))
    tmp = tmp_path_factory.mktemp("report")
    shodan = tmp / "shodan.json.gz"
    with gzip.open(shodan, "wt") as fh:
        fh.write(json.dumps({"ip_str": plain.ip, "port": 2379, "org": "Example Cloud", "asn": "AS64501"}) + "\n")
    mmdb = tmp / "asn.mmdb"
    writer = MMDBWriter(ip_version=4, database_type="GeoLite2-ASN")
    writer.insert_network(IPSet([f"{kube.ip}/32"]),
                          {"autonomous_system_number": 64512, "autonomous_system_organization": "Loopback Lab"})
    writer.to_db_file(str(mmdb))
    tsv = tmp / "ip2asn.tsv"
    tsv.write_text(f"{kube.ip}\t{kube.ip}\t64600\tZZ\tTSV Networks\n"
                   "not a row\n127.0.0.0\t127.0.0.255\t0\tNone\tNot routed\n")
    with FakeServers() as fakes:
        json_ip = kube.ip.rsplit(".", 1)[0] + ".252"
        fakes.start("json", json_ip, 2379)
        yield {"kube": kube, "plain": plain, "shodan": str(shodan), "mmdb": str(mmdb), "tsv": str(tsv),
               "json_ip": json_ip, "tmp": tmp}


def scan_into(bed, db):
    etcdsec("scan", bed["kube"].ip, bed["json_ip"], "--import", bed["shodan"], "--db", db, "--timeout", "5",
            "-q", "--name", "report-test")


@pytest.fixture(scope="module")
def sqlite_db(bed):
    db = str(bed["tmp"] / "scan.db")
    scan_into(bed, db)
    return db


def test_json_report_has_the_contract_keys_and_real_figures(bed, sqlite_db):
    report = json.loads(etcdsec("report", "--db", sqlite_db, "--format", "json", "--asn-db", bed["mmdb"]).stdout)
    totals = report["totals"]
    # 3 addresses: kube (2379+2380), the JSON fake (2379+2380), plain (2379 from the Shodan import)
    assert totals["addresses"] == 3 and totals["pairs"] == 5 and totals["swept"] == 5
    assert totals["reachable"] == 4  # kube 2379/2380, plain 2379, the fake's 2379
    assert totals["etcd"] == 3 and totals["etcd_addresses"] == 2 and totals["clusters"] == 2
    # Exposure verdicts are the prober's: the report must sum exactly what was stored.
    stored = [json.loads(line) for line in
              etcdsec("report", "--db", sqlite_db, "--export", "endpoints").stdout.splitlines()]
    exposed = [r for r in stored if r["exposed"]]
    assert totals["exposed"] == len(exposed) >= 2  # at least both client ports
    assert sum(totals["exposed_by_severity"].values()) == len(exposed)
    assert report["versions"] == {"3.5.1": 2, "3.4.23": 1}
    assert report["organizations"] == {"Loopback Lab": 2, "Example Cloud": 1}
    assert report["asns"] == {"AS64512": 2, "AS64501": 1}
    assert report["names"] == {"infra0": 1, "kube-master-1": 1}
    assert report["kubernetes_names"] == ["kube-master-1"]
    assert report["tls"] == {"http": 3}
    etcd = [r for r in stored if r["is_etcd"]]
    assert report["auth"].get("v3_auth_off", 0) == sum(r["auth"]["v3_enabled"] is False for r in etcd) >= 2
    assert report["auth"]["anonymous_read_v3"] == sum(bool(r["access"]["read_v3"]) for r in etcd) >= 2
    assert report["auth"]["anonymous_read_v2"] == 1  # only the 3.4 server has v2 on
    assert report["findings"]["ETCD-PEER-OPEN"] == 1
    assert report["findings"]["ETCD-ANON-READ-V3"] == sum(
        any(f["id"] == "ETCD-ANON-READ-V3" for f in r["findings"]) for r in etcd)
    assert sum(report["uptime"].values()) == sum(r["uptime_s"] is not None for r in etcd) >= 2
    assert report["uptime"]["> 1 year"] == 0
    assert {o["endpoint"] for o in report["oldest"]} >= {f"{bed['plain'].ip}:2379"}
    assert report["scan"]["status"] == "finished" and report["scan"]["name"] == "report-test"


def test_ip2asn_tsv_and_csv_and_text(bed, sqlite_db):
    out = etcdsec("report", "--db", sqlite_db, "--format", "csv", "--asn-db", bed["tsv"]).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert {"section": "organizations", "key": "TSV Networks", "value": "2"} in rows
    assert {"section": "totals", "key": "etcd", "value": "3"} in rows
    text = etcdsec("report", "--db", sqlite_db).stdout
    assert "kube-master-1" in text and "3.4.23" in text and "organizations" in text
    assert "┃ tls " in text and "┃ tl " not in text  # column titles are words, not clipped plurals


def test_exports_and_list(bed, sqlite_db):
    lines = etcdsec("report", "--db", sqlite_db, "--export", "endpoints", "--format", "jsonl").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 4
    plain = next(r for r in records if r["ip"] == bed["plain"].ip)
    assert plain["meta"]["org"] == "Example Cloud" and plain["version"] == "3.4.23"
    out = etcdsec("report", "--db", sqlite_db, "--export", "findings", "--format", "csv").stdout
    findings = list(csv.DictReader(io.StringIO(out)))
    assert findings and {f["ip"] for f in findings} >= {bed["kube"].ip, bed["plain"].ip}
    listed = json.loads(etcdsec("report", "--db", sqlite_db, "--list", "--format", "json").stdout)
    assert listed[0]["name"] == "report-test" and listed[0]["counts"]["etcd"] == 3


def test_report_from_postgresql(bed, pg_url):
    scan_into(bed, pg_url)
    report = json.loads(etcdsec("report", "--db", pg_url, "--format", "json").stdout)
    assert report["totals"]["etcd"] == 3 and report["versions"] == {"3.5.1": 2, "3.4.23": 1}
    assert report["organizations"] == {"unknown": 2, "Example Cloud": 1}


@pytest.mark.parametrize(("args", "message"), [
    (["--db", "/nonexistent.db"], "no database at"),
    (["--scan", "99"], "no scan 99"),
    (["--asn-db", "/nonexistent.mmdb"], "cannot read ASN database"),
])
def test_bad_input(sqlite_db, args, message):
    if "--db" not in args:
        args = [*args, "--db", sqlite_db]
    proc = etcdsec("report", *args, check=False)
    assert proc.returncode in (2, 3) and proc.stderr.startswith("etcdsec: error:") and message in proc.stderr
    assert "Traceback" not in proc.stderr
