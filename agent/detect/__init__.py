"""Pure detection: bytes and observations in, findings out; no I/O, no clock."""
