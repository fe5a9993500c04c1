"""Contract tests read depot's system columns by role, so they say the same on a catalog that prefixes them."""

from __future__ import annotations

from domain.schema import Table


def by_role(spec: Table, row: dict) -> dict:
    """The row with its system columns under their roles' names: `version`, not `_depot_version`."""
    return {spec.system.role_of(name) or name: value for name, value in row.items()}
