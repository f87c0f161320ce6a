"""The energy-token program: trustless GRID minting from Ed25519-signed meter readings."""
