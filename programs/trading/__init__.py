"""The trading program (C sources in src/, built trading.so), its client and a ready-made sandbox market."""
