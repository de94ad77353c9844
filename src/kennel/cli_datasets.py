"""`kennel datasets`: list, export and import datasets of a running server, over its HTTP API.

Everything goes through the public routes (the same ones the real clients use), so the command works
against any Kennel server it can reach with a key pair; it never opens the database itself.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

datasets_app = typer.Typer(help="List, export and import datasets on a running Kennel server.",
                           no_args_is_help=True)

out = Console()
err = Console(stderr=True)

API = "/api/v2/llm-obs/v1"
UPLOAD = "/api/v2/llm-obs/v2"

UrlOpt = Annotated[str, typer.Option("--url", envvar="KENNEL_URL", help="Server URL.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="DD_API_KEY", help="DD-API-KEY.",
                                                  show_default=False)]
AppKeyOpt = Annotated[str | None, typer.Option("--app-key", envvar="DD_APP_KEY", help="DD-APPLICATION-KEY.",
                                                  show_default=False)]
DEFAULT_URL = "http://127.0.0.1:8000"


class CliError(Exception):
    """A failure to report as one line on stderr, exit status 1."""


def _fail(message: str) -> None:
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def _client(url: str, api_key: str | None, app_key: str | None) -> httpx.Client:
    if not api_key or not app_key:
        raise CliError("both keys are needed: pass --api-key and --app-key, or set DD_API_KEY and DD_APP_KEY")
    # No read timeout: a big export or upload may pause between chunks while the server works.
    return httpx.Client(base_url=url.rstrip("/"), headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key},
                        timeout=httpx.Timeout(30, read=None))


def _problem(r: httpx.Response) -> str:
    try:
        errors = r.json().get("errors") or []
        first = errors[0]
        detail = first.get("detail") or first.get("title") if isinstance(first, dict) else str(first)
    except (ValueError, IndexError, AttributeError):
        detail = r.text[:200] or r.reason_phrase
    return f"{r.status_code} {detail}"


def _check(r: httpx.Response) -> dict[str, Any]:
    if r.status_code != 200:
        raise CliError(_problem(r))
    return r.json()


def _run(fn, *args: Any, **kwargs: Any) -> None:
    """Turn every expected failure into one line on stderr and a non-zero exit."""
    try:
        fn(*args, **kwargs)
    except CliError as exc:
        _fail(str(exc))
    except httpx.ConnectError as exc:
        _fail(f"cannot reach the server: {exc}")
    except httpx.HTTPError as exc:
        _fail(f"request failed: {exc}")
    except OSError as exc:
        _fail(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "))


# Resolving names -------------------------------------------------------------------------------

def _pages(c: httpx.Client, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
    params = {**params, "page[limit]": 1000}
    while True:
        body = _check(c.get(path, params=params))
        yield from body["data"]
        after = (body.get("meta") or {}).get("after")
        if not after:
            return
        params = {**params, "page[cursor]": after}


def _find_project(c: httpx.Client, ref: str) -> dict[str, Any] | None:
    for key in ("filter[id]", "filter[name]"):
        found = _check(c.get(f"{API}/projects", params={key: ref}))["data"]
        if found:
            return found[0]
    return None


def _find_dataset(c: httpx.Client, project_id: str, ref: str) -> dict[str, Any] | None:
    for key in ("filter[id]", "filter[name]"):
        found = _check(c.get(f"{API}/{project_id}/datasets", params={key: ref}))["data"]
        if found:
            return found[0]
    return None


def _project(c: httpx.Client, ref: str) -> dict[str, Any]:
    project = _find_project(c, ref)
    if project is None:
        raise CliError(f"no project with the name or id {ref!r}")
    return project


def _dataset(c: httpx.Client, project: dict[str, Any], ref: str) -> dict[str, Any]:
    dataset = _find_dataset(c, project["id"], ref)
    if dataset is None:
        raise CliError(f"no dataset with the name or id {ref!r} in project {project['attributes']['name']!r}")
    return dataset


# list ------------------------------------------------------------------------------------------

@datasets_app.command("list")
def list_datasets(
    project: Annotated[str | None, typer.Option("--project", "-p", help="Only this project (name or id).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Only datasets with exactly this name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None, app_key: AppKeyOpt = None,
) -> None:
    """List datasets, of every project or of one."""
    def run() -> None:
        with _client(url, api_key, app_key) as c:
            projects = [_project(c, project)] if project else list(_pages(c, f"{API}/projects", {}))
            rows = []
            for p in projects:
                params = {"filter[name]": name} if name else {}
                for d in _pages(c, f"{API}/{p['id']}/datasets", params):
                    a = d["attributes"]
                    rows.append({"project": p["attributes"]["name"], "project_id": p["id"], "dataset": a["name"],
                                 "id": d["id"], "current_version": a["current_version"],
                                 "updated_at": a["updated_at"], "description": a.get("description")})
        if as_json:
            for row in rows:
                sys.stdout.write(json.dumps(row) + "\n")
            return
        table = Table("project", "dataset", "id", "version", "updated")
        for row in rows:
            table.add_row(row["project"], row["dataset"], row["id"], str(row["current_version"]),
                          (row["updated_at"] or "")[:19].replace("T", " "))
        # Piped output is not cut to 80 columns: ids must stay whole for scripts and greps.
        (out if out.is_terminal else Console(width=240)).print(table)
        if not rows:
            err.print("no datasets")
    _run(run)


# export ----------------------------------------------------------------------------------------

@datasets_app.command("export")
def export(
    project: Annotated[str, typer.Argument(help="Project name or id.")],
    dataset: Annotated[str, typer.Argument(help="Dataset name or id.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write ('-' for standard output).")],
    version: Annotated[int | None, typer.Option("--version", help="Dataset version (default: current).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv or jsonl.")] = "csv",
    url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None, app_key: AppKeyOpt = None,
) -> None:
    """Download a dataset version as CSV or JSONL, streamed to a file."""
    def run() -> None:
        if fmt not in ("csv", "jsonl"):
            raise CliError(f"unknown format {fmt!r}; use csv or jsonl")
        with _client(url, api_key, app_key) as c:
            p = _project(c, project)
            d = _dataset(c, p, dataset)
            params: dict[str, Any] = {"format": fmt}
            if version is not None:
                params["version"] = version
            to_stdout = str(output) == "-"
            # Write beside the target and rename at the end, so a failed download leaves no partial file.
            tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.part")
            with c.stream("GET", f"{API}/{p['id']}/datasets/{d['id']}/export", params=params) as r:
                if r.status_code != 200:
                    r.read()
                    raise CliError(_problem(r))
                total = int(r.headers.get("x-record-count", "0") or 0)
                written = 0
                sink = sys.stdout.buffer if to_stdout else open(tmp, "wb")
                try:
                    with _bar() as bar:
                        task = bar.add_task(f"export {d['attributes']['name']}", total=total or None)
                        header = fmt == "csv"
                        for chunk in r.iter_bytes():
                            sink.write(chunk)
                            # Every value is JSON text without raw newlines, so a line is a record.
                            lines = chunk.count(b"\n")
                            if header and lines:
                                lines, header = lines - 1, False
                            written += lines
                            bar.update(task, completed=min(written, total) if total else written)
                finally:
                    if not to_stdout:
                        sink.close()
            if not to_stdout:
                os.replace(tmp, output)
        where = "standard output" if str(output) == "-" else str(output)
        err.print(f"exported {total} records of {d['attributes']['name']} (version "
                  f"{r.headers.get('x-dataset-version')}) to {where}", highlight=False)
    try:
        _run(run)
    finally:
        for leftover in output.parent.glob(f".{output.name}.*.part") if str(output) != "-" else ():
            leftover.unlink(missing_ok=True)


def _bar() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                    TimeElapsedColumn(), console=err, transient=False)


# import ----------------------------------------------------------------------------------------

def _multipart(path: Path, boundary: str, on_bytes) -> tuple[Iterator[bytes], int]:
    """The file as one multipart `file` part, streamed from disk in chunks (with its exact length)."""
    ctype = "application/x-ndjson" if path.suffix.lower() in (".jsonl", ".ndjson") else "text/csv"
    safe = path.name.replace('"', "_").replace("\r", "_").replace("\n", "_")
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{safe}"\r\n'
            f"Content-Type: {ctype}\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    size = path.stat().st_size

    def body() -> Iterator[bytes]:
        yield head
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                on_bytes(len(chunk))
                yield chunk
        yield tail
    return body(), len(head) + size + len(tail)


def _events(r: httpx.Response) -> Iterator[tuple[str, dict[str, Any]]]:
    name, data = None, []
    for line in r.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "" and name is not None:
            yield name, json.loads("\n".join(data) or "{}")
            name, data = None, []


@datasets_app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help="A .csv or .jsonl file with an `input` column/field.",
                                         exists=True, dir_okay=False, readable=True)],
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id.")],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="Dataset name or id.")],
    create: Annotated[bool, typer.Option("--create", help="Create the project and dataset if missing.")] = False,
    deduplicate: Annotated[bool, typer.Option("--deduplicate", help="Skip rows without an id whose content "
                                              "is already in the dataset.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite/--no-overwrite", help="Replace records that have the "
                                            "same id (default) or keep them.")] = True,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="Tag added to every record (repeatable).")] = None,
    url: UrlOpt = DEFAULT_URL, api_key: ApiKeyOpt = None, app_key: AppKeyOpt = None,
) -> None:
    """Upload a CSV or JSONL file into a dataset, all or nothing, as one new version."""
    def run() -> None:
        with _client(url, api_key, app_key) as c:
            p = _find_project(c, project)
            if p is None:
                if not create:
                    raise CliError(f"no project with the name or id {project!r} (use --create to create it)")
                p = _check(c.post(f"{API}/projects", json={"data": {"type": "projects",
                                                                    "attributes": {"name": project}}}))["data"]
            d = _find_dataset(c, p["id"], dataset)
            if d is None:
                if not create:
                    raise CliError(f"no dataset with the name or id {dataset!r} in project "
                                   f"{p['attributes']['name']!r} (use --create to create it)")
                d = _check(c.post(f"{API}/{p['id']}/datasets", json={"data": {"type": "datasets",
                                                                              "attributes": {"name": dataset}}}))["data"]
            params: list[tuple[str, str | int | float | bool | None]] = [("deduplicate", str(deduplicate).lower()),
                                             ("overwrite", str(overwrite).lower())]
            params += [("tags", t) for t in tag or []]
            boundary = uuid.uuid4().hex
            with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                          console=err) as sending:
                send = sending.add_task(f"upload {file.name}", total=file.stat().st_size)
                body, length = _multipart(file, boundary, lambda n: sending.advance(send, n))
                r = c.send(c.build_request(
                    "POST", f"{UPLOAD}/{p['id']}/datasets/{d['id']}/records/upload", params=params, content=body,
                    headers={"Content-Type": f"multipart/form-data; boundary={boundary}",
                             "Content-Length": str(length)}), stream=True)
            try:
                if r.status_code != 200:
                    r.read()
                    raise CliError(_problem(r))
                result: dict[str, Any] | None = None
                with _bar() as bar:
                    task = bar.add_task(f"write into {d['attributes']['name']}", total=None)
                    for event, data in _events(r):
                        if event == "progress":
                            bar.update(task, total=data.get("records_total") or None,
                                       completed=data.get("records_processed", 0))
                        elif event == "completed":
                            bar.update(task, completed=data.get("records_total", 0))
                            result = data
                        elif event == "error":
                            raise CliError(f"upload refused, nothing was stored: {data.get('message')}")
                if result is None:
                    raise CliError("the server closed the upload stream without a result; nothing was stored")
            finally:
                r.close()
        err.print(f"imported {file.name} into {d['attributes']['name']} (project {p['attributes']['name']}): "
                  f"{result['records_created']} created, {result.get('records_updated', 0)} updated, "
                  f"{result.get('records_skipped', 0)} skipped; now at version {result.get('version')}",
                  highlight=False)
    _run(run)
