"""The registry program: users, meters with their Ed25519 keys, last accepted reading, settled mark."""
