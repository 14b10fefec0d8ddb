"""Import files that are not what they claim: entity bombs, external entities, random bytes, deep JSON.

Each is refused with one line saying what the file is (or is not), never read in part and never
"file is truncated" for something that is not truncated.
"""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from etcdsec.errors import UserError
from etcdsec.scan import imports
from etcdsec.scan.imports import read_import

HOST = ('<host><address addr="127.0.0.10" addrtype="ipv4"/><hostnames><hostname name="{name}"/></hostnames>'
        '<ports><port protocol="tcp" portid="2379"><state state="open"/></port></ports></host>')


def nmap_xml(doctype: str, name: str) -> str:
    return (f'<?xml version="1.0"?>\n<!DOCTYPE nmaprun{doctype}>\n<nmaprun scanner="nmap">\n'
            f"{HOST.format(name=name)}\n</nmaprun>\n")


def billion_laughs() -> str:
    entities = '<!ENTITY a "lollollollol">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9))
    return nmap_xml(f" [{entities}]", "&j;")


def import_cli(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    # --import of a refused file stops before any connection: nothing is scanned either way.
    return subprocess.run([sys.executable, "-m", "etcdsec", "scan", "--import", str(path), "--db",
                           str(path.parent / "s.db"), "--no-probe", "--max-time", "5", *extra],
                          capture_output=True, text=True, timeout=120)


def test_entity_bomb_is_refused_as_a_bomb(tmp_path: Path) -> None:
    bomb = tmp_path / "scan.xml"
    bomb.write_text(billion_laughs())
    with pytest.raises(UserError, match="declares an entity 'a': entity expansion") as caught:
        read_import(str(bomb))
    assert "truncated" not in str(caught.value)
    done = import_cli(bomb)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "billion laughs" in line and "nothing was read" in line


def test_external_entity_is_refused_and_nothing_is_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("canary-5f1b9e")
    xxe = tmp_path / "scan.xml"
    xxe.write_text(nmap_xml(f' [<!ENTITY x SYSTEM "file://{secret}">]', "&x;"))
    done = import_cli(xxe)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "external entity 'x'" in line and "XXE" in line
    assert "canary-5f1b9e" not in done.stdout + done.stderr


def test_random_bytes_are_no_known_format(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(17).randbytes(8192))
    done = import_cli(junk)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"etcdsec: error: cannot import {junk}: not a masscan, zmap, nmap or Shodan file")
    assert "malformed" not in line


def test_text_that_is_no_format_and_a_forced_format_that_does_not_fit(tmp_path: Path) -> None:
    prose = tmp_path / "notes.txt"
    prose.write_text("hello world\nthese are not targets\n")
    with pytest.raises(UserError, match="not a masscan, zmap, nmap or Shodan file"):
        read_import(str(prose))
    with pytest.raises(UserError, match="not a zmap file: none of its 2 records"):
        read_import(str(prose), "zmap")


def test_deeply_nested_json_is_a_bad_file_not_a_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "masscan.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    done = import_cli(deep)
    assert done.returncode == 2, done.stderr[-500:]
    assert "Traceback" not in done.stderr
    assert "not a masscan-json file" in done.stderr


def test_xml_garbage_in_the_middle_is_not_called_truncated(tmp_path: Path) -> None:
    broken = tmp_path / "scan.xml"
    broken.write_text(nmap_xml("", "a") .replace("</nmaprun>", "<oops></nmaprun>\n<more/>"))
    with pytest.raises(UserError, match="not well-formed XML at line"):
        read_import(str(broken))
    cut = tmp_path / "cut.xml"
    whole = nmap_xml("", "a") + ""
    cut.write_text(whole.replace("</nmaprun>\n", "") + HOST.format(name="b")[:40])
    result = read_import(str(cut))
    assert result.truncated and result.pairs == [("127.0.0.10", 2379)]


def test_gzip_bomb_is_cut_at_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(imports, "MAX_IMPORT_BYTES", 1 << 20)
    bomb = tmp_path / "shodan.json.gz"
    bomb.write_bytes(gzip.compress(b"\n" * (4 << 20)))
    assert os.path.getsize(bomb) < 10_000
    with pytest.raises(UserError, match="decompresses to more than 1 MiB"):
        read_import(str(bomb))
