"""The prober: one endpoint in, one exact exposure verdict out."""
