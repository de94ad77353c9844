"""Options shared by the `kennel` commands."""

from __future__ import annotations

from typing import Annotated

import typer

DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database-url", envvar="KENNEL_DATABASE_URL",
                 help="sqlite:///PATH (default ./kennel.db) or postgresql://user:pass@host:port/db"),
]
