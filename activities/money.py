"""Minor units ↔ decimal amounts for the activities (providers speak both).

The table and the arithmetic live in :mod:`kernel.money` (one ISO 4217 table, from
Babel), shared with the CLI; this module keeps the activities' import path.
"""

from __future__ import annotations

from kernel.money import from_minor, minor_digits, to_minor

__all__ = ["from_minor", "minor_digits", "to_minor"]
