"""Wallet sign-in: Sign-In With Solana messages, single-use nonces, short-lived session tokens."""
