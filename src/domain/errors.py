"""Domain errors. Each carries PostgREST's error fields; entrypoints map the class to a status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One reason a value was refused: which field, a stable code, and words for a person."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


class DepotError(Exception):
    code = "DEPOT000"

    def __init__(self, message: str, *, details: Any = None, hint: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.hint = hint
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "details": self.details, "hint": self.hint}


class BadRequest(DepotError):
    """The request cannot be understood: malformed query, body or parameter."""

    code = "PGRST100"


class UnknownTable(DepotError):
    code = "PGRST205"


class UnknownColumn(BadRequest):
    code = "PGRST204"


class NotFound(DepotError):
    code = "PGRST116"


class NotAcceptable(DepotError):
    code = "PGRST107"


class NotSingular(NotAcceptable):
    """A singular representation (vnd.pgrst.object+json) asked of a result that is not one row."""

    code = "PGRST116"

    def __init__(self, rows: int):
        super().__init__("Cannot coerce the result to a single JSON object",
                         details=f"The result contains {rows} rows")


class InvalidRows(DepotError):
    """Rows that break the declaration. `details` lists {row, field, code, message}."""

    code = "22023"


class Conflict(DepotError):
    code = "23000"


class DuplicateKey(Conflict):
    code = "23505"


class ReferenceViolation(Conflict):
    code = "23503"


class IdempotencyClash(Conflict):
    code = "DEPOT409"


class PreconditionFailed(DepotError):
    code = "DEPOT412"


class Unavailable(DepotError):
    """The store could not answer now (timeout, serialization failure after retries)."""

    code = "57014"


class NotAllowed(DepotError):
    """The method does not apply to this resource: a write to a view, a refresh of a plain view (405)."""

    code = "PGRST117"
