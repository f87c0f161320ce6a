"""The certificates program: energy attribute certificates (ERC) over settled net generation."""
