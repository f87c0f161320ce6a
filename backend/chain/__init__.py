"""Which chain the backend talks to and what is deployed on it (embedded LiteSVM, or a cluster over JSON-RPC)."""
