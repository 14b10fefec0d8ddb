"""`etcdsec monitor`: keep watching etcd and say when something changes.

`observation` turns a probe result into the facts that are compared; `drift` is the sans-IO state
machine that decides what is a change (and `--down-after`); `history` keeps observations in the
store across restarts; `exposure` is the asyncio loop of `monitor exposure`; `alerting` maps a
target's state to Alertmanager alerts; `metrics` renders the monitor's Prometheus figures.
"""
