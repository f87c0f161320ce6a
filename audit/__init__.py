"""An independent audit of a GridTokenX deployment: ``gridtokenx verify`` (docs/audit.md).

It reads the chain through the public JSON-RPC API, decodes what it reads from the documents alone
(docs/reading-format.md, docs/programs.md and docs/programs/*.md; audit/formats.py), and imports nothing
of the backend, the gateway or the project's program clients — a third party could write the same from the
same documents. tests/audit/test_audit_independent.py keeps it that way.
"""

from audit.verify import Discrepancy, Programs, Report, audit

__all__ = ["Discrepancy", "Programs", "Report", "audit"]
