"""The whole report object: the scan's summary, the comparison with an earlier scan, the honeypot
and monitor sections (from `--events` files, else from the database's events table).

Every renderer (text, JSON, CSV, HTML) draws from this one object, so the page's embedded JSON
is `--format json` byte for byte.
"""

from __future__ import annotations

import sys
from typing import Any

from etcdsec.asn import AsnLookup
from etcdsec.errors import UserError
from etcdsec.report.compare import compare_scans
from etcdsec.report.eventfiles import loaded_events
from etcdsec.report.honeypot import honeypot_summary
from etcdsec.report.monitor import monitor_summary
from etcdsec.report.summary import build_report
from etcdsec.store.scans import ScanStore


def assemble(store: ScanStore, scan_id: int | None = None, asn: AsnLookup | None = None,
             event_files: list[str] | None = None, compare: int | None = None) -> dict[str, Any]:
    report = build_report(store, scan_id, asn)
    if compare is not None:
        if "scan" not in report:
            raise UserError("--compare needs a scan in this database to compare with")
        report["compare"] = compare_scans(store, report["scan"]["id"], compare)
    if event_files:
        # The sensor writes each event to its file and its database alike: with files given they
        # are the record, and the database's copy is not counted a second time.
        with loaded_events(event_files) as loaded:
            honeypot, monitor = honeypot_summary(loaded.engine), monitor_summary(loaded.engine)
            source = loaded.describe()
        for f in source["files"]:
            if f["broken_lines"]:
                print(f"etcdsec: events {f['path']}: {f['broken_lines']} of {f['lines']} lines are not events "
                      "(skipped)", file=sys.stderr)
    else:
        honeypot, monitor = honeypot_summary(store.engine), monitor_summary(store.engine)
        source = None
    if honeypot is not None:
        if asn is not None:
            for src in honeypot["sources"]:
                found = asn.lookup(src["src_ip"]) if src.get("src_ip") else None
                src["org"] = (found[1] or found[0]) if found else None
        report["honeypot"] = honeypot
    if monitor is not None:
        report["monitor"] = monitor
    if source is not None:
        report["event_files"] = source
    if not {"scan", "honeypot", "monitor"} & set(report):
        if source is not None:
            raise UserError(f"no scans in this database and no events in {', '.join(event_files or [])} "
                            f"({source['broken_lines']} broken lines)")
        raise UserError("no scans or honeypot events in this database yet (run etcdsec scan first)")
    return report
