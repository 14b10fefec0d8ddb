"""`etcdsec scan`: expand targets, permute them, sweep TCP, hand open ports to the prober."""
