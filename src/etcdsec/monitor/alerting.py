"""Which Alertmanager alerts hold for a watched target, from its current state (sans-IO).

EtcdExposed      the last verdict (while down: the last one seen up) says exposed; labels carry
                 the severity, so a severity change resolves the old alert and fires the new one
EtcdUnreachable  the target counted as down (`--down-after` misses in a row)
EtcdCertificateExpiring  the certificate was within `--cert-warn` days of expiry when last seen
"""

from __future__ import annotations

from etcdsec.events.alertmanager import Alert
from etcdsec.monitor.drift import TargetState


def target_alerts(state: TargetState, sensor: str) -> list[Alert]:
    base = state.baseline
    if base is None:
        return []
    alerts: list[Alert] = []
    seen = base if base.reachable else state.last_up
    common = {"target": base.target, "sensor": sensor}
    if seen is not None and seen.exposed:
        alerts.append(Alert({"alertname": "EtcdExposed", **common, "severity": seen.severity},
                            {"summary": f"etcd at {base.target} is exposed ({seen.severity})",
                             "findings": ",".join(seen.findings)}))
    if not base.reachable:
        alerts.append(Alert({"alertname": "EtcdUnreachable", **common, "severity": "warning"},
                            {"summary": f"etcd at {base.target} does not answer", "error": base.error or ""}))
    if seen is not None and seen.cert_expiring:
        alerts.append(Alert({"alertname": "EtcdCertificateExpiring", **common, "severity": "warning"},
                            {"summary": f"the certificate of {base.target} expires {seen.cert_not_after}"}))
    return alerts
