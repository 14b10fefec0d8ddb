# ruff: noqa: E501  (fixture files are quoted verbatim, as the tools write them)
import gzip
import json
import shutil
import subprocess

import pytest

from etcdsec.errors import UserError
from etcdsec.scan.imports import detect_format, read_import

MASSCAN_JSON = """[
{   "ip": "127.0.0.10",   "timestamp": "1700000000", "ports": [ {"port": 2379, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },
{   "ip": "127.0.0.11",   "timestamp": "1700000000", "ports": [ {"port": 2380, "proto": "tcp", "status": "open", "reason": "syn-ack", "ttl": 64} ] },
{   "ip": "not-an-ip", "ports": [] },
{ broken json
]
"""

MASSCAN_LIST = """#masscan
open tcp 2379 127.0.0.10 1700000000
open tcp 4001 127.0.0.12 1700000000
closed tcp 2380 127.0.0.13 1700000000
open tcp 99999 127.0.0.14 1700000000
garbage
# end
"""

MASSCAN_XML = """<?xml version="1.0"?>
<!-- masscan v1.3 scan -->
<nmaprun scanner="masscan" start="1700000000" version="1.0-BETA"  xmloutputversion="1.03">
<scaninfo type="syn" protocol="tcp" />
<host endtime="1700000000"><address addr="127.0.0.10" addrtype="ipv4"/><ports><port protocol="tcp" portid="2379"><state state="open" reason="syn-ack" reason_ttl="64"/></port></ports></host>
<host endtime="1700000000"><address addr="127.0.0.15" addrtype="ipv4"/><ports><port protocol="tcp" portid="2380"><state state="open" reason="syn-ack" reason_ttl="64"/></port></ports></host>
<runstats><finished time="1700000001" timestr="x" elapsed="1" /><hosts up="2" down="0" total="2" /></runstats>
</nmaprun>
"""

ZMAP_CSV = """saddr,sport,classification,success
127.0.0.20,2379,synack,1
127.0.0.21,2379,rst,0
bogus,2379,synack,1
127.0.0.22,,synack,1
"""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_masscan_json_keeps_open_ports_and_counts_bad_lines(tmp_path):
    r = read_import(write(tmp_path, "m.json", MASSCAN_JSON))
    assert r.format == "masscan-json"
    assert r.pairs == [("127.0.0.10", 2379), ("127.0.0.11", 2380)]
    assert r.malformed == 2 and r.records == 2


def test_masscan_json_as_one_valid_array(tmp_path):
    body = json.dumps([{"ip": "127.0.0.1", "ports": [{"port": 2379, "proto": "tcp", "status": "open"}]}])
    assert read_import(write(tmp_path, "m.json", body)).pairs == [("127.0.0.1", 2379)]


def test_masscan_list(tmp_path):
    r = read_import(write(tmp_path, "m.txt", MASSCAN_LIST))
    assert r.format == "masscan-list"
    assert r.pairs == [("127.0.0.10", 2379), ("127.0.0.12", 4001)]
    assert r.malformed == 2


def test_masscan_xml_and_truncation_keeps_what_was_read(tmp_path):
    r = read_import(write(tmp_path, "m.xml", MASSCAN_XML))
    assert r.format == "masscan-xml" and not r.truncated
    assert r.pairs == [("127.0.0.10", 2379), ("127.0.0.15", 2380)]
    cut = MASSCAN_XML[: MASSCAN_XML.index("127.0.0.15") + 30]
    r = read_import(write(tmp_path, "cut.xml", cut))
    assert r.truncated and r.pairs == [("127.0.0.10", 2379)]
    assert "truncated" in r.summary()


def test_zmap_csv_and_plain(tmp_path):
    r = read_import(write(tmp_path, "z.csv", ZMAP_CSV))
    assert r.format == "zmap"
    assert r.pairs == [("127.0.0.20", 2379)] and r.hosts == ["127.0.0.22"] and r.malformed == 1
    r = read_import(write(tmp_path, "z.txt", "127.0.0.30\n127.0.0.31\nxx\n"))
    assert r.hosts == ["127.0.0.30", "127.0.0.31"] and r.malformed == 1


def test_shodan_gzip_keeps_org_fields_and_survives_truncation(tmp_path):
    banners = [
        {"ip_str": "127.0.0.40", "port": 2379, "org": "Example Cloud", "asn": "AS64500", "isp": "Ex",
         "location": {"country_code": "NL"}, "data": "HTTP/1.1 404"},
        {"ip_str": "127.0.0.41", "port": 2380, "org": "Other Org", "asn": "AS64501"},
    ]
    lines = [json.dumps(b) for b in banners] + ["{not json"]
    path = tmp_path / "s.json.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    r = read_import(str(path))
    assert r.format == "shodan" and r.malformed == 1
    assert r.pairs == [("127.0.0.40", 2379), ("127.0.0.41", 2380)]
    assert r.meta["127.0.0.40"] == {"org": "Example Cloud", "asn": "AS64500", "isp": "Ex",
                                    "location": {"country_code": "NL"}}
    raw = path.read_bytes()
    (tmp_path / "cut.gz").write_bytes(raw[: len(raw) - 12])
    r = read_import(str(tmp_path / "cut.gz"))
    assert r.truncated and ("127.0.0.40", 2379) in r.pairs


def test_unreadable_files_are_clear_errors(tmp_path):
    with pytest.raises(UserError, match="cannot read import file"):
        read_import(str(tmp_path / "gone.xml"))
    (tmp_path / "bad.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    with pytest.raises(UserError, match="not valid gzip"):
        read_import(str(tmp_path / "bad.gz"))
    with pytest.raises(UserError, match="unknown import format"):
        read_import(write(tmp_path, "x", "1.2.3.4"), "pcap")


def test_detect_format():
    assert detect_format(b'{"ip_str": "1.2.3.4"}') == "shodan"
    assert detect_format(b"<?xml version='1.0'?><nmaprun scanner='nmap'>") == "nmap-xml"


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap not installed (scripts/test.sh installs it)")
def test_real_nmap_xml_of_a_loopback_listener(tmp_path):
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        out = tmp_path / "nmap.xml"
        subprocess.run(["nmap", "-sT", "-Pn", "-n", "-p", f"{port},1", "-oX", str(out), "127.0.0.1"],
                       check=True, capture_output=True, timeout=60)
    r = read_import(str(out))
    assert r.format == "nmap-xml" and r.malformed == 0
    assert r.pairs == [("127.0.0.1", port)]
