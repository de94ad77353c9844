"""What the `kennel` commands check before they touch a database or a port, and how they say what is wrong.

Each check turns a failure a newcomer meets in the first hour (a path instead of a URL, a missing
directory, a file that is not a database, another application's database, a database from a newer
Kennel, PostgreSQL refusing the role or database, a port in use) into a `StartupError`: one line saying
what is wrong and one saying what to do. `kennel.cli.main` prints those two lines and exits 1 (the
traceback only with --debug).
"""

from __future__ import annotations

import errno
import logging
import re
import socket
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

URL_HELP = "use sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://user:pass@host:port/db"
SQLITE_MAGIC = b"SQLite format 3\x00"


class StartupError(Exception):
    """A problem the user can fix: `what` is wrong, and `todo` says how to fix it."""

    def __init__(self, what: str, todo: str) -> None:
        super().__init__(what)
        self.what = what
        self.todo = todo


@dataclass(frozen=True)
class Opened:
    engine: Engine
    shown: str        # the URL without its password, for messages
    created: bool     # Kennel's tables were just created in an empty database


def shown_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def check_url(url: str) -> None:
    """Refuse what cannot be a database URL before any driver sees it."""
    if "://" not in url:
        raise StartupError(f"{url!r} is not a database URL",
                           f"for a SQLite file write sqlite:///{url}; {URL_HELP}")
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, ValueError) as exc:  # ValueError: a port that is not a number
        raise StartupError(f"{shown_url(url)!r} is not a database URL ({exc})", URL_HELP) from None
    if backend not in ("sqlite", "postgresql", "postgres"):
        raise StartupError(f"Kennel does not support {backend!r} databases ({shown_url(url)})", URL_HELP)


def check_sqlite_file(url: str) -> bool:
    """Whether the SQLite file is yet to be made; refuse a missing directory and a file that is not SQLite."""
    database = make_url(url).database
    if not database or database == ":memory:":
        return True
    path = Path(database).expanduser()
    if not path.parent.is_dir():
        raise StartupError(f"the directory {path.parent.resolve()} does not exist (database {path})",
                           f"create it (mkdir -p {path.parent}) or name a file in an existing directory")
    if path.is_dir():
        raise StartupError(f"{path.resolve()} is a directory, not a database file",
                           f"name a file, e.g. sqlite:///{path / 'kennel.db'}")
    if not path.exists() or path.stat().st_size == 0:
        return True
    with open(path, "rb") as fh:
        head = fh.read(len(SQLITE_MAGIC))
    if head != SQLITE_MAGIC:
        raise StartupError(f"{path.resolve()} is not a SQLite database",
                           "point --database-url at a Kennel database, or at a file that does not exist yet "
                           "(Kennel creates it)")
    return False


def _postgres_error(exc: DBAPIError, shown: str) -> StartupError:
    text = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    url = make_url(shown)
    where = f"{url.host or 'localhost'}:{url.port or 5432}"
    if "does not exist" in text and "database" in text:
        return StartupError(f"PostgreSQL at {where} has no database {url.database!r}",
                            f"create it (createdb -h {url.host or 'localhost'} {url.database}) or fix the name "
                            f"in --database-url")
    if "role" in text and "does not exist" in text:
        return StartupError(f"PostgreSQL at {where} has no role {url.username!r}",
                            "fix the user name in --database-url, or create the role (createuser)")
    if "password authentication failed" in text or "no password supplied" in text:
        return StartupError(f"PostgreSQL at {where} refused the password for {url.username!r}",
                            "fix the password in --database-url (postgresql://user:password@host:port/db)")
    if "Connection refused" in text or "could not connect" in text or "timeout" in text.lower() \
            or "failed to resolve" in text or "Name or service not known" in text:
        return StartupError(f"cannot reach PostgreSQL at {where} ({text.rpartition(': ')[2] or text})",
                            "start PostgreSQL there, or fix the host and port in --database-url")
    return StartupError(f"PostgreSQL at {where} refused the connection: {text}",
                        "check --database-url and the server's log")


def _known_revisions() -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from kennel.db.migrate import MIGRATIONS_DIR

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return sorted(script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions())


def _sqlite_contents(path: Path, shown: str) -> tuple[set[str], set[str]]:
    """Tables and schema versions of an existing SQLite file, read without writing a byte (the engine's
    connections would switch the file to WAL mode, which changes another application's file)."""
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                                 "AND name NOT LIKE 'sqlite_%'")}
            revisions = ({r[0] for r in conn.execute("SELECT version_num FROM alembic_version")}
                         if "alembic_version" in tables else set())
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StartupError(f"{shown} cannot be read as a SQLite database ({exc})",
                           "point --database-url at a Kennel database, or at a file that does not exist yet") \
            from exc
    return tables, revisions


def _engine_contents(engine: Engine, shown: str) -> tuple[set[str], set[str]]:
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            revisions = ({row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
                         if "alembic_version" in tables else set())
    except DBAPIError as exc:
        raise _postgres_error(exc, shown) from exc
    return tables, revisions


def check_contents(tables: set[str], revisions: set[str], shown: str) -> bool:
    """Whether the database is empty; refuse one holding another application's tables or a newer Kennel's."""
    if not tables:
        return True
    if "alembic_version" not in tables:
        others = sorted(tables)
        listed = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
        raise StartupError(f"{shown} holds tables that are not Kennel's ({listed}); Kennel writes nothing into it",
                           "give Kennel a database of its own: a new file name, or an empty PostgreSQL database")
    known = _known_revisions()
    unknown = revisions - set(known)
    if unknown:
        revision = min(unknown)
        if re.fullmatch(r"\d{4}(_\w+)?", revision):
            raise StartupError(f"{shown} was written by a newer Kennel (schema {revision}); this Kennel "
                               f"knows schemas up to {known[-1]}",
                               "upgrade Kennel (git pull, then python3 dev.py serve), or restore a backup made "
                               "with this version")
        raise StartupError(f"{shown} holds another application's tables (its schema version is {revision!r})",
                           "give Kennel a database of its own: a new file name, or an empty PostgreSQL database")
    return False


def open_database(url: str) -> Opened:
    """Check, announce on stderr, and migrate the database at `url` (creating Kennel's tables if new)."""
    from kennel.db.engine import make_engine, normalize_url
    from kennel.db.migrate import upgrade

    check_url(url)
    shown = shown_url(url)
    is_sqlite = make_url(normalize_url(url)).get_backend_name() == "sqlite"
    if is_sqlite:
        database = make_url(url).database or ""
        shown = f"sqlite:///{Path(database).expanduser().resolve()}" if database not in ("", ":memory:") else shown
        new = check_sqlite_file(url)
        empty = new or check_contents(*_sqlite_contents(Path(database).expanduser(), shown), shown)
        engine = make_engine(url)
    else:
        engine = make_engine(url)
        empty = check_contents(*_engine_contents(engine, shown), shown)
    say(f"database: {shown}" + (" (new: creating Kennel's tables)" if empty else ""))
    try:
        upgrade(engine)
    except DBAPIError as exc:
        if engine.dialect.name == "postgresql":
            raise _postgres_error(exc, shown) from exc
        raise
    return Opened(engine, shown, empty)


def check_port(host: str, port: int) -> None:
    """Refuse a port that is taken before anything says the server is serving. (The socket is closed
    again: uvicorn binds its own, with its workers, a moment later.)"""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host!r}: {exc.strerror}",
                           "use --host with an address of this machine (127.0.0.1, or 0.0.0.0 for all)") from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(f"port {port} on {host} is already in use (another kennel serve?)",
                               f"stop what holds it (ss -ltnp 'sport = :{port}' shows it) or choose another "
                               f"port with --port") from exc
        if exc.errno == errno.EACCES:
            raise StartupError(f"not allowed to listen on port {port}",
                               "use a port above 1023, or put a reverse proxy in front") from exc
        raise StartupError(f"cannot listen on {host}:{port}: {exc.strerror}",
                           "use --host with an address of this machine (127.0.0.1, or 0.0.0.0 for all)") from exc
    sock.close()


_logger: logging.Logger | None = None


def log_to(logger: logging.Logger) -> None:
    """Send `say` through the server's log (timestamps, JSON) from now on; commands print plain lines."""
    global _logger
    _logger = logger


def say(message: str) -> None:
    """A line for the person at the terminal; stdout stays the command's machine-readable answer."""
    if _logger is not None:
        _logger.info(message)
    else:
        print(message, file=sys.stderr, flush=True)
