"""`etcdsec monitor connections`: who connects to this host's etcd listeners, against a learnt baseline.

The core (baseline, decision, triage card) is pure data in, data out; the sources around it read the
kernel (sock_diag polling, AF_PACKET SYN capture) and hand it `Connection` observations; the
process behind a new source is looked up within a share of the time (timebudget.py).
"""
