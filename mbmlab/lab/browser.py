"""Open a page in headless Chromium (Debian's ``chromium``) from disk: a screenshot, and the
console errors and failed loads the page caused (broken images, missing scripts, JS errors).
The browser test uses it on a run's ``index.html``, a comparison page and a notebook's HTML."""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

# how Chromium logs a page's console messages to stderr
_CONSOLE = re.compile(r":CONSOLE[^\]]*\]\s*(.*)")


class BrowserMissing(RuntimeError):
    """No Chromium on PATH."""


@dataclass
class Opened:
    page: Path
    screenshot: Path
    errors: list[str]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    raise BrowserMissing("headless Chromium is needed (Debian: apt-get install chromium; ./workbench installs it)")


# Chromium logs script errors to stderr but not a failed image or script load; this check,
# appended to a copy of the page, reports those (and images that loaded as nothing) as console errors
CHECK = """<script>
window.addEventListener("error", function (e) {
  var t = e.target;
  if (t && t !== window && (t.src || t.href)) console.error("mbmlab-check error: failed to load " + (t.src || t.href).slice(0, 120));
}, true);
window.addEventListener("load", function () {
  for (var i = 0; i < document.images.length; i++) {
    var img = document.images[i];
    if (!img.complete || img.naturalWidth === 0) console.error("mbmlab-check error: broken image " + (img.getAttribute("src") || "").slice(0, 120));
  }
});
</script>"""


def open_page(page: Path, screenshot: Path, width: int = 1280, height: int = 2400, timeout: int = 120) -> Opened:
    """Load ``page`` (a file) in headless Chromium, save a ``width``×``height`` screenshot, and
    return the console errors it logged: script errors, failed loads, broken images. The page is
    opened as a copy beside it (so its relative links resolve) with ``CHECK`` added at its start."""
    page, screenshot = Path(page).resolve(), Path(screenshot).resolve()
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    checked = page.with_name(f".browser-check-{page.name}")
    checked.write_text(CHECK + page.read_text(encoding="utf-8"), encoding="utf-8")
    try:
        with tempfile.TemporaryDirectory() as profile:
            done = subprocess.run(
                [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
                 f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", "--log-level=0",
                 f"--window-size={width},{height}", f"--screenshot={screenshot}", checked.as_uri()],
                capture_output=True, text=True, timeout=timeout)
    finally:
        checked.unlink(missing_ok=True)
    errors = []
    for line in done.stderr.splitlines():
        console = _CONSOLE.search(line)
        if console and ("error" in line.lower() or "Uncaught" in line):
            errors.append(console.group(1))
    if not screenshot.exists():
        errors.append(f"no screenshot written (exit code {done.returncode}): {done.stderr[-500:]}")
    return Opened(page, screenshot, errors)
