"""`etcdsec report`: sum up what scans and honeypots saw."""
