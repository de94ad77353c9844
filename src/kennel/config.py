"""Runtime settings, read from the environment with explicit overrides from the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

DEFAULT_DATABASE_URL = "sqlite:///./kennel.db"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # Applied on every start; turned off only by tests that migrate once up front.
    migrate_on_start: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        base = cls(
            database_url=os.environ.get("KENNEL_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=_int_env("KENNEL_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
        )
        clean = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **clean)
