"""How headless Chromium opens the dashboard for the browser tests, the time-to-data
benchmark and the screenshots: which binary, and the flags that keep it quiet and offline.
It lives in the package, which all three import, though the service never starts a browser."""

from __future__ import annotations

import os
from typing import Final

CHROMIUM: Final = os.environ.get("FLOWDECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
