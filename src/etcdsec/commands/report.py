"""`etcdsec report`: sum up a stored scan, list scans, or export its endpoints and findings."""

from __future__ import annotations

import argparse
import sys

from etcdsec.errors import StoreError, UserError
from etcdsec.store.engine import DEFAULT_DB, open_engine, table_names
from etcdsec.store.scans import ScanStore, guard
from etcdsec.store.schema import foreign_tables, schema_problem

EPILOG = """--format json prints an object with totals, versions, organizations, names, uptime, tls, auth
(docs/schema.md). Organizations come from Shodan fields of imported targets, else from --asn-db
(ip2asn TSV or MaxMind ASN .mmdb).
--export endpoints|findings writes the stored rows as jsonl or csv instead of a summary.
--format html -o report.html writes one self-contained page (charts, tables, the JSON it was drawn
from); --events adds honeypot/monitor JSON-lines files, --compare an earlier scan (docs/report.md)."""


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("report", help="sum up a scan: versions, organizations, names, uptime, posture",
                       description="Sum up a stored scan, list scans, or export endpoints and findings.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", default=DEFAULT_DB, help=f"SQLite path or postgresql:// URL (default {DEFAULT_DB})")
    p.add_argument("--scan", type=int, default=None, metavar="ID", help="which scan (default: the latest)")
    p.add_argument("--format", choices=("text", "json", "csv", "jsonl", "html"), default="text")
    p.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE instead of stdout")
    p.add_argument("--events", nargs="+", metavar="FILE",
                   help="honeypot/monitor JSON-lines event files (instead of the database's events)")
    p.add_argument("--compare", type=int, metavar="SCAN_ID", help="what changed since this earlier scan")
    p.add_argument("--charts", metavar="DIR", help="also write each chart as its own SVG file into DIR")
    p.add_argument("--asn-db", metavar="FILE", help="ip2asn TSV or MaxMind ASN .mmdb for organizations")
    p.add_argument("--list", action="store_true", help="list the scans in the database")
    p.add_argument("--export", choices=("endpoints", "findings"), help="dump stored rows (jsonl or csv)")
    p.set_defaults(run=run)


def _existing_db(text: str) -> str:
    if "://" not in text:
        from pathlib import Path

        if not Path(text).expanduser().is_file():
            raise UserError(f"no database at {text} (run etcdsec scan --db {text} first)")
    return text


def _open_store(db: str) -> ScanStore:
    """The store, or the real reason it cannot be read: not a database, damaged, unreachable, not ours."""
    engine = open_engine(_existing_db(db), read_only=True)
    names = table_names(engine)  # StoreError with the database's own complaint
    others = foreign_tables(names)
    if not names:
        raise UserError("no scans or honeypot events in this database yet (it has no tables; run etcdsec scan first)")
    if not names - set(others):
        raise UserError(f"{db} holds no etcdsec data: its tables ({', '.join(others[:10])}) were made by "
                        "another program")
    with guard("reading the schema"), engine.connect() as conn:
        problem = schema_problem(conn)
    if problem:
        raise StoreError(problem)
    store = ScanStore(engine)
    if "scans" in names:
        store.latest_scan_id()  # a damaged table fails here with its reason, not as "no scans yet"
    return store


def run(args: argparse.Namespace) -> int:
    store = _open_store(args.db)
    if args.list:
        return _list(store, args.format)
    if args.export:
        return _export(store, args)
    if args.format == "jsonl":
        raise UserError("--format jsonl goes with --export (a summary is json, csv or text)")
    from etcdsec.asn import open_asn_database
    from etcdsec.report.assemble import assemble
    from etcdsec.report.write import check_writable, write_report

    check_writable(args.output, args.charts)
    asn = open_asn_database(args.asn_db) if args.asn_db else None
    report = assemble(store, args.scan, asn, args.events, args.compare)
    where = write_report(report, args.format, args.output, args.charts)
    if where:
        print(f"etcdsec: {where}", file=sys.stderr)
    return 0


def _scan_id(store: ScanStore, wanted: int | None) -> int:
    scan_id = wanted if wanted is not None else store.latest_scan_id()
    if scan_id is None or store.get_scan(scan_id) is None:
        raise UserError("no scans in this database yet" if wanted is None else f"no scan {wanted} in this database")
    return scan_id


def _export(store: ScanStore, args: argparse.Namespace) -> int:
    from etcdsec.report.render import export_endpoints, export_findings

    fmt = args.format if args.format in ("jsonl", "csv") else "jsonl"
    if args.format not in ("jsonl", "csv", "text"):
        raise UserError("--export writes jsonl or csv")
    scan_id = _scan_id(store, args.scan)
    if args.export == "endpoints":
        export_endpoints(store.endpoint_results(scan_id), fmt, sys.stdout)
    else:
        export_findings(store.finding_rows(scan_id), fmt, sys.stdout)
    return 0


def _list(store: ScanStore, fmt: str) -> int:
    import json

    scans = store.list_scans()
    if fmt == "json":
        print(json.dumps(scans, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    from etcdsec.output import plain  # a database may come from anyone: its text is shown, not run

    table = Table(title="scans")
    for column in ("id", "name", "started", "finished", "status", "ports", "addresses", "shards", "counts"):
        table.add_column(column)
    for s in scans:
        counts = s["counts"] or {}
        table.add_row(*map(plain, (s["id"], s["name"] or "", str(s["started"])[:19], str(s["finished"] or "")[:19],
                                   s["status"], s["ports"], s["addresses"], s["shards"],
                                   ", ".join(f"{k} {v}" for k, v in counts.items()))))
    Console().print(table)
    return 0
