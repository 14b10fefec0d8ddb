"""The decoy's non-key endpoints: /version, /metrics, /debug/vars, /config/local/log, peer /members."""
