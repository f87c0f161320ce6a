"""The payments program: THBC issued against fiat deposits (each deposit reference once) and redeemed."""
