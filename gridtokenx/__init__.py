"""GridTokenX Edge: signed meter readings from Modbus to MQTT to Solana.

The core package holds only what every role shares: the signed-reading wire format
(:mod:`gridtokenx.reading`) and the command line (:mod:`gridtokenx.cli`).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
