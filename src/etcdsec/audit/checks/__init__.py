"""The audit checks, one module per subject; `etcdsec.audit.rules` lists them as a table."""
