"""Headless Chromium for the browser scripts: finding it, and loading a page in it.

Chromium is found on PATH as ``chromium``, ``chromium-browser`` or
``google-chrome``, or named by the ``CHROMIUM`` environment variable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
)


def chromium() -> str:
    found = os.environ.get("CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    if not found:
        sys.exit("no Chromium found: install it (apt-get install -y chromium) or set CHROMIUM")
    return found


def browse(browser: str, page: Path, *extra: str) -> tuple[str, str]:
    """Load ``page``: the DOM Chromium made of it, and its console messages."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [browser, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
    console = "\n".join(line for line in done.stderr.splitlines() if ":CONSOLE" in line)
    return done.stdout, console
