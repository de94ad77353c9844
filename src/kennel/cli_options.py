"""Options shared by the `kennel` commands."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

DatabaseOpt = Annotated[
    Optional[str],
    typer.Option("--database-url", envvar="KENNEL_DATABASE_URL",
                 help="sqlite:///PATH (default ./kennel.db) or postgresql://user:pass@host:port/db"),
]
