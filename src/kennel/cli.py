"""The `kennel` command: serve, manage keys, migrate."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kennel.cli_datasets import datasets_app
from kennel.cli_options import DatabaseOpt
from kennel.cli_people import users_app
from kennel.config import Settings

app = typer.Typer(help="Kennel: a self-hosted Datadog LLM Observability evaluation API. Add --debug to any "
                       "command to see the traceback behind an error.",
                  no_args_is_help=True, add_completion=False)
keys_app = typer.Typer(help="Create, list and revoke API/application key pairs.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(db_app, name="db")
app.add_typer(datasets_app, name="datasets")
app.add_typer(users_app, name="users")

console = Console()
err_console = Console(stderr=True)



def _open(database_url: str | None):
    """Open the database named on the command line, migrated to the latest schema; say which on stderr
    (see kennel.startup for what it refuses)."""
    from kennel.db.session import make_sessionmaker
    from kennel.startup import open_database

    settings = Settings.from_env(database_url=database_url)
    engine = open_database(settings.database_url).engine
    return engine, make_sessionmaker(engine)


def _fail(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


@app.command()
def serve(
    database_url: DatabaseOpt = None,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes (use >1 with PostgreSQL).")] = 1,
    max_body_bytes: Annotated[int | None, typer.Option(
        envvar="KENNEL_MAX_BODY_BYTES", help="Largest accepted request body in bytes (default 64 MiB).")] = None,
    body_timeout: Annotated[float | None, typer.Option(
        envvar="KENNEL_BODY_TIMEOUT", help="Seconds a request body may take to arrive (default 60); 408 past it.")
    ] = None,
    max_bodies_in_flight_bytes: Annotated[int | None, typer.Option(
        envvar="KENNEL_MAX_BODIES_IN_FLIGHT_BYTES",
        help="Bytes of request bodies held at once (default 256 MiB); more wait, then get 503.")] = None,
    queue_timeout: Annotated[float | None, typer.Option(
        envvar="KENNEL_QUEUE_TIMEOUT", help="Seconds a request may wait for the database (default 10); then 503.")
    ] = None,
    log_level: Annotated[str, typer.Option(
        help="Log level: debug, info (one access line per request), warning, error.")] = "info",
    log_format: Annotated[str, typer.Option(
        envvar="KENNEL_LOG_FORMAT", help="text (timestamped lines) or json (one object per line).")] = "text",
) -> None:
    """Run the HTTP server (migrating the database first)."""
    import logging
    import logging.config

    import uvicorn

    from kennel import logs, startup
    from kennel.db.session import unit_of_work
    from kennel.people.service import issue_setup_token

    if log_format not in logs.FORMATS:
        _fail(f"--log-format must be one of {', '.join(logs.FORMATS)}, got {log_format!r}")
    if log_level.upper() not in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG", "TRACE"):
        _fail(f"--log-level must be debug, info, warning or error, got {log_level!r}")
    log_config = logs.config(log_format, "DEBUG" if log_level.lower() == "trace" else log_level)
    logging.config.dictConfig(log_config)
    announce = logging.getLogger(logs.STARTUP).info
    startup.log_to(logging.getLogger(logs.STARTUP))

    settings = Settings.from_env(database_url=database_url, max_body_bytes=max_body_bytes,
                                 body_timeout=body_timeout, bodies_in_flight_bytes=max_bodies_in_flight_bytes,
                                 queue_timeout=queue_timeout)
    if workers > 1 and settings.database_url.startswith("sqlite"):
        # Each process would keep its own write queue and its own view of an import being written (see
        # datasets/dataset_import.py): one process is what SQLite's single writer allows anyway.
        _fail("--workers above 1 needs PostgreSQL: on SQLite, Kennel is one process (leave out --workers)")
    for name, value in (("body_timeout", settings.body_timeout), ("queue_timeout", settings.queue_timeout)):
        if not value > 0:
            _fail(f"--{name.replace('_', '-')} must be above 0")
    # Before anything says "serving": a port in use is one clear error, not a traceback after start-up.
    startup.check_port(host, port)
    engine, factory = _open(settings.database_url)
    with unit_of_work(factory, write=True) as session:
        setup_token = issue_setup_token(session)
    engine.dispose()
    # Workers are separate processes that build the app from the environment.
    os.environ["KENNEL_DATABASE_URL"] = settings.database_url
    os.environ["KENNEL_MAX_BODY_BYTES"] = str(settings.max_body_bytes)
    os.environ["KENNEL_BODY_TIMEOUT"] = str(settings.body_timeout)
    os.environ["KENNEL_MAX_BODIES_IN_FLIGHT_BYTES"] = str(settings.bodies_in_flight_bytes)
    os.environ["KENNEL_QUEUE_TIMEOUT"] = str(settings.queue_timeout)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    announce(f"kennel serving on http://{host}:{port} (API docs at /docs; stop with Ctrl-C)")
    if setup_token:
        # Printed once per start while nobody can sign in; each start's link replaces the last one.
        announce(f"No one can sign in yet. Open this link once to create the first admin: "
                 f"http://{shown}:{port}/setup/{setup_token}")
    uvicorn.run("kennel.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_config=log_config, log_level=log_level.lower(), access_log=False, timeout_keep_alive=30)


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option("--name", help="What uses this key pair (e.g. ci, laptop).")],
    user: Annotated[str | None, typer.Option(
        "--user", help="The person the pair acts as, with their role. Without it the pair belongs to no one "
                       "and has every right (an admin's).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON line {api_key, app_key}.")] = False,
    as_export: Annotated[bool, typer.Option(
        "--export", help="Print `export DD_API_KEY=... DD_APP_KEY=...` for a shell: eval \"$(kennel keys create "
                         "--name me --export)\".")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a key pair. The keys are printed once; only their hashes are stored."""
    from kennel.db.session import unit_of_work
    from kennel.errors import KennelError
    from kennel.keys.service import create_key
    from kennel.people.service import get_user

    if not name.strip():
        _fail("--name must not be empty")
    _, factory = _open(database_url)
    try:
        with unit_of_work(factory, write=True) as session:
            owner = get_user(session, who=user) if user else None
            key = create_key(session, name=name.strip(), user_pk=owner.pk if owner else None)
    except KennelError as exc:
        _fail(exc.detail)
    if as_json:
        sys.stdout.write(orjson.dumps({"api_key": key.api_key, "app_key": key.app_key}).decode() + "\n")
        return
    if as_export:
        # The keys are URL-safe tokens: nothing in them needs quoting for a shell.
        sys.stdout.write(f"export DD_API_KEY={key.api_key} DD_APP_KEY={key.app_key}\n")
        return
    whose = f" for {owner.username} ({owner.role})" if owner else " (no user: it has every right)"
    console.print(f"Created key pair [bold]{key.name}[/]{whose}, id {key.id}. Store these now; they are not shown "
                  f"again.")
    console.print(f"  DD-API-KEY:         {key.api_key}")
    console.print(f"  DD-APPLICATION-KEY: {key.app_key}")


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """List key pairs (never the keys themselves)."""
    from kennel.db.session import unit_of_work
    from kennel.keys.service import list_keys
    from kennel.people.service import list_users

    _, factory = _open(database_url)
    with unit_of_work(factory, write=False) as session:
        rows = list_keys(session, include_revoked=all_keys)
        owners = {u.pk: u.username for u in list_users(session)}
    if as_json:
        for r in rows:
            sys.stdout.write(orjson.dumps({
                "id": r.id, "name": r.name, "user": owners.get(r.user_pk) if r.user_pk else None,
                "api_key_last4": r.api_key_last4,
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None}).decode() + "\n")
        return
    table = Table("id", "name", "user", "api key", "app key", "created", "revoked")
    for r in rows:
        table.add_row(r.id, r.name, owners.get(r.user_pk, "") if r.user_pk else "(none: admin)", f"…{r.api_key_last4}", f"…{r.app_key_last4}",
                      r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                      r.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if r.revoked_at else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id, key name, or the API key itself.")],
    all_named: Annotated[bool, typer.Option(
        "--all", help="Revoke every active pair with this name (a name several pairs share is refused without it).")
    ] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Revoke a key pair; requests with it get 403 from then on."""
    from kennel.db.session import unit_of_work
    from kennel.errors import Conflict, KennelError
    from kennel.keys.service import revoke_keys

    _, factory = _open(database_url)
    try:
        with unit_of_work(factory, write=True) as session:
            rows = revoke_keys(session, key=key, all_named=all_named)
    except Conflict as exc:
        err_console.print(f"[bold red]error:[/] {escape(exc.detail)}:", soft_wrap=True)
        for match in (exc.meta or {}).get("matches", []):
            err_console.print(f"  {match['id']}  api key …{match['api_key_last4']}  "
                              f"created {match['created_at']:%Y-%m-%d %H:%M:%S}", soft_wrap=True)
        raise typer.Exit(1) from None
    except KennelError as exc:
        _fail(exc.detail)
    if len(rows) == 1:
        console.print(f"Revoked key pair {escape(rows[0].name)} ({rows[0].id}).", soft_wrap=True)
    else:
        console.print(f"Revoked {len(rows)} key pairs named {escape(rows[0].name)}: "
                      f"{', '.join(r.id for r in rows)}.", soft_wrap=True)


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseOpt = None) -> None:
    """Apply pending migrations (every command does this on its own; this only migrates)."""
    engine, _ = _open(database_url)
    console.print(f"database at {_redact(str(engine.url))} is up to date")


def main(argv: list[str] | None = None) -> None:
    """`kennel`: a problem the user can fix (kennel.startup.StartupError) is two lines on stderr and exit
    status 1; `--debug` anywhere on the command line (or KENNEL_DEBUG=1) shows the traceback instead."""
    from kennel.startup import StartupError

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("KENNEL_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    try:
        app(args=args, prog_name="kennel")
    except StartupError as exc:
        if debug:
            raise
        sys.stderr.write(f"kennel: error: {exc.what}\n  {exc.todo}\n")
        sys.exit(1)


if __name__ == "__main__":
    main()
