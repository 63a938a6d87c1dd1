"""One tree of errors with stable codes.

Every error a user can cause is a :class:`RatecardError` with a stable ``code``
(used by the API as ``{"error": code, "detail": message}``) and a CLI exit code::

    RatecardError                     error            exit 1
    ├── InvalidInput                  invalid_input    exit 1
    │   ├── InvalidAmount             invalid_amount
    │   ├── CatalogInvalid            catalog_invalid  (carries every problem found)
    │   ├── UsageInvalid              usage_invalid
    │   ├── EventInvalid              event_invalid
    │   └── TimeInvalid               time_invalid
    ├── NotFound                      not_found        exit 3 (API 404)
    ├── Conflict                      conflict         exit 4 (API 409)
    │   ├── InvoiceFinalized          invoice_finalized
    │   └── InsufficientCredits       insufficient_credits
    ├── Unauthorized                  unauthorized     (API 401)
    ├── Forbidden                     forbidden        (API 403)
    └── Unavailable                   unavailable      exit 5 (API 503: a backend is down)
"""

from __future__ import annotations

from dataclasses import dataclass


class RatecardError(Exception):
    code = "error"
    exit_code = 1
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InvalidInput(RatecardError):
    code = "invalid_input"
    http_status = 422


class InvalidAmount(InvalidInput):
    code = "invalid_amount"


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (file and path inside it) and what to do."""

    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file if not self.path else f"{self.file}: {self.path}"
        return f"{where}: {self.message}"


class CatalogInvalid(InvalidInput):
    code = "catalog_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        n = len(problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the catalog"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in problems))


class UsageInvalid(InvalidInput):
    code = "usage_invalid"


class EventInvalid(InvalidInput):
    code = "event_invalid"


class TimeInvalid(InvalidInput):
    code = "time_invalid"


class NotFound(RatecardError):
    code = "not_found"
    exit_code = 3
    http_status = 404


class Conflict(RatecardError):
    code = "conflict"
    exit_code = 4
    http_status = 409


class InvoiceFinalized(Conflict):
    code = "invoice_finalized"


class InsufficientCredits(Conflict):
    code = "insufficient_credits"


class Unauthorized(RatecardError):
    code = "unauthorized"
    http_status = 401


class Forbidden(RatecardError):
    code = "forbidden"
    http_status = 403


class Unavailable(RatecardError):
    code = "unavailable"
    exit_code = 5
    http_status = 503
