"""Runtime settings, read from the environment with explicit overrides from the CLI."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///./kennel.db"
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_BODIES_IN_FLIGHT_BYTES = 256 * 1024 * 1024
DEFAULT_QUEUE_TIMEOUT = 10.0
DEFAULT_SESSION_IDLE_MINUTES = 8 * 60.0
DEFAULT_SESSION_MAX_HOURS = 7 * 24.0


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from exc


def _positive_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise SystemExit(f"{name} must be a number above 0, got {raw!r}")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    # How long a request body may take to arrive in full (408 past it).
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    # Bytes of request bodies the server holds at once; more wait up to queue_timeout, then 503.
    bodies_in_flight_bytes: int = DEFAULT_BODIES_IN_FLIGHT_BYTES
    # How long a request may wait for its turn at the database before a 503 with Retry-After.
    queue_timeout: float = DEFAULT_QUEUE_TIMEOUT
    # A browser session ends after this long unused, and this long after sign-in whatever happens.
    session_idle_minutes: float = DEFAULT_SESSION_IDLE_MINUTES
    session_max_hours: float = DEFAULT_SESSION_MAX_HOURS
    # Applied on every start; turned off only by tests that migrate once up front.
    migrate_on_start: bool = True

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        base = cls(
            database_url=os.environ.get("KENNEL_DATABASE_URL") or DEFAULT_DATABASE_URL,
            max_body_bytes=_int_env("KENNEL_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES),
            body_timeout=_positive_env("KENNEL_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT),
            bodies_in_flight_bytes=_int_env("KENNEL_MAX_BODIES_IN_FLIGHT_BYTES", DEFAULT_BODIES_IN_FLIGHT_BYTES),
            queue_timeout=_positive_env("KENNEL_QUEUE_TIMEOUT", DEFAULT_QUEUE_TIMEOUT),
            session_idle_minutes=_positive_env("KENNEL_SESSION_IDLE_MINUTES", DEFAULT_SESSION_IDLE_MINUTES),
            session_max_hours=_positive_env("KENNEL_SESSION_MAX_HOURS", DEFAULT_SESSION_MAX_HOURS),
        )
        clean: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return replace(base, **clean)
