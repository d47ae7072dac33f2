"""The verdict vocabulary of the claims checklist, shared by `report` and the modules that decide a claim
(`stability.stability_verdict`) without importing each other."""
from __future__ import annotations

HOLDS, FAILS = "holds", "does not hold"


def cannot_tell(n: int) -> str:
    return f"cannot tell with {n} seed{'s' if n != 1 else ''}"
