"""The README's examples, run as written, in order, against a fresh server on each database (the way
Datasette tests its documentation), so an example that stops working fails CI.

Which blocks run: every ```bash/```sh/```shell and ```python block, in the order they appear. A block that
must not run (it blocks, or needs PostgreSQL's admin tools) is fenced as ```console or ```text, or is
preceded by `<!-- not-tested: reason -->`; test_the_untested_blocks_are_few_and_say_why keeps that set
small. Shell blocks run in bash with `set -euo pipefail`, one after another, each starting from the
environment the previous one left (so `export` and `eval` carry on, as in one terminal). Python blocks
run in one interpreter, in order, as in one `python3 -i` session, with the environment the shell blocks
built. What the test changes in the text, and only this: the server's address `http://127.0.0.1:8000`
becomes the test server's, and `python3 dev.py` names dev.py by its full path (the blocks run in a
temporary directory, where their files land). The database the test server serves is given to the
`kennel` commands as KENNEL_DATABASE_URL, as `dev.py serve` and `dev.py kennel` share ./kennel.db, and
DD_TRACE_AGENT_URL points ddtrace's tracer at a closed port (nothing it sends may leave the machine).
Python runs in the test's interpreter, which has both clients (the README's `pip install` is a console
transcript).
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import (
    ROOT,
    Server,
    create_database,
    free_port,
    serving,
)

README = ROOT / "README.md"
RUN = {"bash": "shell", "sh": "shell", "shell": "shell", "python": "python"}
NOT_RUN = {"console", "text", "nginx", ""}
FENCE = re.compile(r"(?:<!--\s*not-tested:(?P<reason>[^>]*?)-->\s*\n)?^```(?P<lang>[\w-]*)\n(?P<code>.*?)^```\s*$",
                   re.DOTALL | re.MULTILINE)
MOST_UNTESTED = 4
DEFAULT_URL = "http://127.0.0.1:8000"


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int
    not_tested: str | None

    @property
    def runs(self) -> bool:
        return self.lang in RUN and self.not_tested is None


def blocks() -> list[Block]:
    text = README.read_text()
    return [Block(m["lang"], m["code"], text.count("\n", 0, m.start("code")) + 1,
                  m["reason"].strip() if m["reason"] is not None else None) for m in FENCE.finditer(text)]


def test_the_untested_blocks_are_few_and_say_why() -> None:
    found = blocks()
    assert all(b.lang in RUN or b.lang in NOT_RUN for b in found), [(b.line, b.lang) for b in found]
    untested = [b for b in found if b.not_tested is not None]
    assert all(b.not_tested for b in untested), "a not-tested comment needs its reason"
    assert len(untested) <= MOST_UNTESTED, [(b.line, b.not_tested) for b in untested]
    assert sum(b.runs for b in found) >= 12


WORKER = r"""
import contextlib, json, os, sys, traceback
namespace = {"__name__": "__main__"}
answers = sys.stdout
for request in sys.stdin:
    request = json.loads(request)
    os.environ.clear()
    os.environ.update(request["env"])
    try:
        with contextlib.redirect_stdout(sys.stderr):
            exec(compile(request["code"], request["name"], "exec"), namespace)
        answers.write(json.dumps({"ok": True}) + "\n")
    except BaseException:
        answers.write(json.dumps({"ok": False, "error": traceback.format_exc()}) + "\n")
    answers.flush()
"""


class Session:
    """A terminal (the environment shell blocks leave behind) and one Python session beside it."""

    def __init__(self, server: Server, workdir: Path) -> None:
        self.server, self.workdir = server, workdir
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DD_", "KENNEL_"))}
        # ddtrace's tracer would look for an agent on :8126; nothing must leave the machine.
        self.env.update(KENNEL_DATABASE_URL=server.database_url,
                        DD_TRACE_AGENT_URL=f"http://127.0.0.1:{free_port()}")
        self.log = workdir / "python.log"
        with open(self.log, "w") as log:
            self.python = subprocess.Popen([sys.executable, "-c", WORKER], cwd=workdir, text=True,
                                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)

    def adapt(self, code: str) -> str:
        return code.replace(DEFAULT_URL, self.server.base_url).replace("python3 dev.py", f"python3 {ROOT}/dev.py")

    def shell(self, block: Block) -> None:
        env_file = self.workdir / ".env-after"
        script = f"set -euo pipefail\n{self.adapt(block.code)}\nenv -0 > {env_file}\n"
        proc = subprocess.run(["bash", "-c", script], check=False, cwd=self.workdir, env=self.env, capture_output=True,
                              text=True, timeout=300)
        assert proc.returncode == 0, (f"README line {block.line}: exit {proc.returncode}\n{block.code}\n"
                                      f"STDOUT:\n{proc.stdout[-3000:]}\nSTDERR:\n{proc.stderr[-3000:]}")
        self.env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)

    def run_python(self, block: Block) -> None:
        assert self.python.stdin and self.python.stdout
        request = {"code": self.adapt(block.code), "name": f"README.md:{block.line}", "env": self.env}
        self.python.stdin.write(json.dumps(request) + "\n")
        self.python.stdin.flush()
        ready, _, _ = select.select([self.python.stdout], [], [], 300)
        assert ready, f"README line {block.line}: no answer in 300 s\n{self.log.read_text()[-3000:]}"
        answer = json.loads(self.python.stdout.readline() or '{"ok": false, "error": "the interpreter died"}')
        assert answer["ok"], (f"README line {block.line}:\n{block.code}\n{answer['error']}\n"
                              f"OUTPUT:\n{self.log.read_text()[-3000:]}")

    def close(self) -> None:
        if self.python.stdin:
            self.python.stdin.close()
        try:
            self.python.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.python.kill()


@pytest.fixture
def fresh_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    for url in create_database(backend, tmp_path_factory):
        yield from serving(url, backend, tmp_path_factory)


def test_the_examples_run_as_written(fresh_server: Server, tmp_path: Path) -> None:
    session = Session(fresh_server, tmp_path)
    try:
        for block in blocks():
            if not block.runs:
                continue
            if RUN[block.lang] == "shell":
                session.shell(block)
            else:
                session.run_python(block)
    finally:
        session.close()
    # What the examples made is there, under the names they gave it.
    assert (tmp_path / "golden.csv").read_text().startswith("id,input,expected_output,metadata,tags")
