"""`etcdsec demo --html FILE` (what scripts/demo.sh ends with): the demo's real etcd, scanned and
written up as the HTML page, and the command says where the page is."""

from __future__ import annotations

import json
import re
import subprocess
import sys


def test_demo_writes_the_html_report(tmp_path) -> None:
    page = tmp_path / "demo.html"
    proc = subprocess.run([sys.executable, "-m", "etcdsec", "demo", "--html", str(page)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(f"HTML report of what the demo found: {page} (open it in a browser)")
    embedded = re.search(r'<script type="application/json" id="etcdsec-report">(.*?)</script>', page.read_text(),
                         re.S)
    assert embedded
    report = json.loads(embedded.group(1))
    assert report["scan"]["name"] == "demo" and report["totals"]["etcd"] == 2  # client and peer port
    assert report["kubernetes_names"] == ["kube-master-1"] and report["totals"]["exposed"] == 2
