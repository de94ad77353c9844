"""`kennel users`: create people, list them, change their role or password, disable them."""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from kennel.cli_options import DatabaseOpt

users_app = typer.Typer(help="People who sign in to the web app, and whose key pairs act with their role.",
                        no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

ROLE_HELP = "admin (everything, people and keys included), member (projects, datasets, experiments, queues) " \
            "or annotator (review the queues they may review)"


def _write(database_url: str | None, work: Callable[[Any], Any]) -> Any:
    """Run `work(session)` in one unit of work; a refused change prints its reason and exits 1."""
    from kennel.cli import _open
    from kennel.db.session import unit_of_work
    from kennel.errors import KennelError

    _, factory = _open(database_url)
    try:
        with unit_of_work(factory, write=True) as session:
            return work(session)
    except KennelError as exc:
        err_console.print(f"[bold red]error:[/] {exc.detail}")
        raise typer.Exit(1) from None


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        err_console.print("[bold red]error:[/] no terminal to ask for a password on; use --password-stdin")
        raise typer.Exit(1)
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Again: "):
        err_console.print("[bold red]error:[/] the two passwords differ")
        raise typer.Exit(1)
    return first


StdinOpt = Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of "
                                                                  "standard input instead of asking.")]


@users_app.command("create")
def users_create(
    username: Annotated[str, typer.Argument(help="The name they sign in with.")],
    role: Annotated[str, typer.Option("--role", help=ROLE_HELP)] = "member",
    email: Annotated[str | None, typer.Option("--email", help="Their email (restricted queues list "
                                                                 "reviewers by email).")] = None,
    password_stdin: StdinOpt = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Create a person. The password is asked for (or read from standard input); only its argon2id hash is
    stored."""
    from kennel.people.service import create_user

    password = _password(password_stdin)
    user = _write(database_url, lambda s: create_user(s, username=username, email=email, role=role,
                                                      password=password))
    console.print(f"Created {user.role} [bold]{user.username}[/] (id {user.id}).")


@users_app.command("list")
def users_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    database_url: DatabaseOpt = None,
) -> None:
    """List people, their roles and whether they are disabled."""
    from kennel.people.service import list_users

    users = _write(database_url, list_users)
    if as_json:
        for u in users:
            sys.stdout.write(orjson.dumps({
                "id": u.id, "username": u.username, "email": u.email, "role": u.role,
                "created_at": u.created_at.isoformat(),
                "disabled_at": u.disabled_at.isoformat() if u.disabled_at else None}).decode() + "\n")
        return
    table = Table("user", "email", "role", "created", "disabled")
    for u in users:
        table.add_row(u.username, u.email or "", u.role, u.created_at.strftime("%Y-%m-%d %H:%M"),
                      u.disabled_at.strftime("%Y-%m-%d %H:%M") if u.disabled_at else "")
    console.print(table)


@users_app.command("set-role")
def users_set_role(
    user: Annotated[str, typer.Argument(help="User name, email or id.")],
    role: Annotated[str, typer.Argument(help=ROLE_HELP)],
    database_url: DatabaseOpt = None,
) -> None:
    """Change someone's role; it applies to their next request, from the app and from their key pairs."""
    from kennel.people.service import set_role

    row = _write(database_url, lambda s: set_role(s, who=user, role=role))
    console.print(f"{row.username} is now {row.role}.")


@users_app.command("disable")
def users_disable(
    user: Annotated[str, typer.Argument(help="User name, email or id.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Disable someone: their browser sessions end at once and their key pairs stop working."""
    from kennel.people.service import disable_user

    row = _write(database_url, lambda s: disable_user(s, who=user))
    console.print(f"Disabled {row.username}: signed out everywhere; their key pairs are refused.")


@users_app.command("enable")
def users_enable(
    user: Annotated[str, typer.Argument(help="User name, email or id.")],
    database_url: DatabaseOpt = None,
) -> None:
    """Let a disabled person sign in again (their key pairs work again too)."""
    from kennel.people.service import enable_user

    row = _write(database_url, lambda s: enable_user(s, who=user))
    console.print(f"Enabled {row.username}.")


@users_app.command("passwd")
def users_passwd(
    user: Annotated[str, typer.Argument(help="User name, email or id.")],
    password_stdin: StdinOpt = False,
    database_url: DatabaseOpt = None,
) -> None:
    """Set someone's password; their browser sessions end."""
    from kennel.people.service import set_password

    password = _password(password_stdin)
    row = _write(database_url, lambda s: set_password(s, who=user, password=password))
    console.print(f"Password of {row.username} changed; their browser sessions have ended.")
