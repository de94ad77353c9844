#!/usr/bin/env python3
"""Developer entry point that needs nothing but Python 3.11.

    python3 dev.py serve [kennel serve options]   # install into .venv if needed, then serve on ./kennel.db
    python3 dev.py test  [pytest options]         # install into .venv if needed, then run the whole suite

Set KENNEL_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test to include the PostgreSQL half.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".kennel-installed"


def _fingerprint() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def ensure_env() -> None:
    if not (BIN / "python").exists():
        print("creating .venv ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    if STAMP.exists() and STAMP.read_text() == _fingerprint():
        return
    print("installing kennel and its test dependencies into .venv ...", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(_fingerprint())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"serve", "test", "kennel"}:
        print(__doc__)
        return 2
    ensure_env()
    command, rest = argv[0], argv[1:]
    os.chdir(ROOT)
    if command == "serve":
        return subprocess.call([str(BIN / "kennel"), "serve", *rest])
    if command == "kennel":
        return subprocess.call([str(BIN / "kennel"), *rest])
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
