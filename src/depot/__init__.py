"""The declaration language, as a user's catalog imports it: ``from depot import Catalog, References``.

Everything here is defined in ``domain.schema`` (and, for the numeric bounds, ``annotated_types``);
this package only gives it one short, stable name outside depot's layers.
"""

from annotated_types import Ge, Gt, Interval, Le, Lt, MaxLen

from domain.schema import (
    BigInt,
    Catalog,
    Column,
    ColumnType,
    Doc,
    ForeignKey,
    Naive,
    Numeric,
    OneOf,
    Pattern,
    References,
    Renamed,
    Searchable,
    SystemColumns,
    Table,
)

__all__ = [
    "BigInt", "Catalog", "Column", "ColumnType", "Doc", "ForeignKey", "Ge", "Gt", "Interval", "Le", "Lt",
    "MaxLen", "Naive", "Numeric", "OneOf", "Pattern", "References", "Renamed", "Searchable", "SystemColumns",
    "Table",
]
