#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

    python3 dev.py serve [kennel serve options]   # install Kennel into .venv if needed, then serve ./kennel.db
    python3 dev.py kennel [command ...]           # the `kennel` command (keys, users, datasets, db) on ./kennel.db
    python3 dev.py test  [pytest options]         # also install the test dependencies, then run the suite

Set KENNEL_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test to include the PostgreSQL half.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import signal
import subprocess
import sys
import venv
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
# Outside .venv, which may not exist yet: every dev.py run installing into it takes this lock first.
LOCK = ROOT / ".dev.lock"
# What is installed, each with the pyproject.toml it was installed from: serving needs only Kennel.
STAMPS = {"serve": VENV / ".kennel-installed", "test": VENV / ".kennel-test-installed"}
# Written last when .venv is created, so a creation cut short is redone rather than used without pip.
CREATED = VENV / ".kennel-venv-created"


def _say(message: str) -> None:
    # stderr: stdout belongs to the command run (`dev.py kennel keys create --json` prints one JSON line).
    print(message, file=sys.stderr, flush=True)


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def _current(kind: str) -> bool:
    stamp = STAMPS[kind]
    return stamp.exists() and stamp.read_text() == _fingerprint()


def ensure_env(kind: str) -> None:
    """Make .venv hold Kennel (kind "serve") or Kennel and its test dependencies ("test")."""
    if _current(kind) or (kind == "serve" and _current("test")):
        return
    with open(LOCK, "w") as lock:
        # A second first run (serve and test started together) waits here for the first to finish.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _current(kind) or (kind == "serve" and _current("test")):
            return
        # A .venv made before CREATED existed, with a stamp, was created in full.
        if not CREATED.exists() and not ((BIN / "python").exists() and STAMPS["serve"].exists()):
            _say("creating .venv ...")
            venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        CREATED.write_text("")
        pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
        target = f"{ROOT}[test]" if kind == "test" else str(ROOT)
        _say("installing kennel" + (" and its test dependencies" if kind == "test" else "") + " into .venv ...")
        subprocess.run([*pip, "install", "-e", target], check=True)
        STAMPS[kind].write_text(_fingerprint())
        if kind == "test":
            STAMPS["serve"].write_text(_fingerprint())


def run(command: list[str], *, server: bool = False) -> int:
    """Run `command` and pass it the stop signals this wrapper gets, so that stopping the wrapper by its
    pid stops the server too and nothing is left holding the port.

    The server runs in its own process group: Ctrl-C then reaches it once (from us) rather than twice
    (from the terminal and from us), which uvicorn would take as "exit now" instead of a graceful stop.
    Other commands stay in the terminal's group, where they may prompt (`kennel users create` asks for a
    password) and get Ctrl-C from the terminal themselves; the wrapper just waits for them.
    """
    child = subprocess.Popen(command, process_group=0 if server else None)

    def forward(signum: int, _frame: FrameType | None) -> None:
        if child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGINT, forward if server else signal.SIG_IGN)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    code = child.wait()
    # A child stopped by a signal we forwarded has stopped as asked.
    return 0 if code in (-signal.SIGINT, -signal.SIGTERM, -signal.SIGHUP) else code


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "kennel"}:
        print(__doc__)
        return 2
    command, rest = argv[0], argv[1:]
    try:
        ensure_env("test" if command == "test" else "serve")
    except KeyboardInterrupt:
        _say("interrupted; the next run finishes the installation")
        return 130
    except subprocess.CalledProcessError as exc:
        _say(f"installing into .venv failed (exit {exc.returncode}); see pip's message above")
        return 1
    if command == "kennel":
        # The database `dev.py serve` serves, wherever this runs from; files named on the command line
        # (`-o golden.csv`) stay relative to where the user is.
        os.environ.setdefault("KENNEL_DATABASE_URL", f"sqlite:///{ROOT / 'kennel.db'}")
        return run([str(BIN / "kennel"), *rest])
    os.chdir(ROOT)
    if command == "serve":
        return run([str(BIN / "kennel"), "serve", *rest], server=True)
    return run([str(BIN / "python"), "-m", "pytest", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
