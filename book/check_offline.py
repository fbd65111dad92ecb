#!/usr/bin/env python
"""Check that the built book loads without any remote request, in a real browser.

Usage (from the repository root, after the book is built)::

    python book/check_offline.py [--html book/_build/html] [--screenshots /tmp/hwml-book]

Two checks, both must pass:

1. **Static**: no ``<script src>``, ``<link href>``, ``<img src>`` (or ``<iframe>``,
   ``<source>``, ``<video>``, ``<audio>``, ``<embed>``, ``<object>``) in any HTML page,
   and no ``url(...)`` or ``@import`` in any stylesheet, points at a remote host.
2. **In Chromium**: the book is served on 127.0.0.1 and ``index.html`` and every page
   of the table of contents is opened in headless Chromium, driven over the DevTools
   protocol on a pipe (``--remote-debugging-pipe``: no extra package, no port). Every
   request the page makes is recorded; the check fails if one goes to a host other
   than 127.0.0.1/localhost, if a local request fails (a missing vendored file), if
   the page has no title or first heading, if MathJax leaves math unrendered, or if an
   image does not load; and where a reader would notice: a table wider than the text
   column (outside a scroll box), an image without a numbered caption, a ``NaN`` cell,
   a command whose ``--`` became a typographic dash, a visible code cell of more than 15
   lines, a chapter page without an equation. A screenshot of each page goes to
   ``--screenshots``.
3. **Scorecard**: every number of the front page's scorecard is the one the executed
   chapters glued (:func:`scorecard_problems`).

Chromium is Debian's ``/usr/bin/chromium`` (``make offline-check`` installs it).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import functools
import html.parser
import http.server
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BOOK = Path(__file__).resolve().parent
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
#: Schemes that never leave the page.
LOCAL_SCHEMES = {"data", "blob", "about", "chrome", "chrome-error", "devtools"}

#: Screenshots show the whole page, cut at this height (CSS pixels).
MAX_SCREENSHOT_HEIGHT = 6000

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--hide-scrollbars",
    "--mute-audio",
    # Remote names resolve to nothing, so a stray request fails at once instead of
    # waiting on DNS; it is still seen (and reported) as a request.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
    "--window-size=1280,1000",
    "--remote-debugging-pipe",
]

# What a page must show once it has loaded (evaluated in the page, awaited).
PAGE_STATE_JS = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await MathJax.startup.promise;
  }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  const h1 = document.querySelector('article h1') || document.querySelector('main h1')
             || document.querySelector('h1');
  const text = (el) => el ? el.textContent.replace(/[\\u00b6#]/g, '').trim() : '';
  const images = [...document.images].filter((img) => img.getBoundingClientRect().width > 0);
  return {
    url: location.href,
    title: document.title,
    h1: text(h1),
    h1Visible: !!h1 && h1.getBoundingClientRect().height > 0,
    mathSources: document.querySelectorAll('.math, div.math, span.math').length,
    mathRendered: document.querySelectorAll('mjx-container').length,
    mathErrors: document.querySelectorAll('mjx-merror').length,
    brokenImages: images.filter((img) => !(img.complete && img.naturalWidth > 0))
                        .map((img) => img.getAttribute('src')),
    images: images.length,
    // reader-facing checks: what overflows, what is unexplained, what cannot be copied
    wideTables: [...document.querySelectorAll('article table')].filter((table) => {
      const column = table.closest('article').getBoundingClientRect().width;
      let el = table.parentElement;
      while (el && el.tagName !== 'ARTICLE') {
        const overflow = getComputedStyle(el).overflowX;
        if (overflow === 'auto' || overflow === 'scroll') return false;
        el = el.parentElement;
      }
      return table.getBoundingClientRect().width > column + 1;
    }).length,
    uncaptionedImages: [...document.querySelectorAll('article img')].filter(
      (img) => !(img.closest('figure') && img.closest('figure').querySelector('figcaption'))
               && img.getBoundingClientRect().width > 0).length,
    nanCells: [...document.querySelectorAll('article td, article th')].filter(
      (cell) => /^(nan|NaN|None)$/.test(cell.textContent.trim())).length,
    dashedOptions: [...document.querySelectorAll('article td, article code')].filter(
      (el) => /(^|\\s)\u2013[a-z]/.test(el.textContent)).length,
    codeWalls: [...document.querySelectorAll('article div.cell_input')].filter(
      (el) => !el.closest('details') && el.getBoundingClientRect().height > 0
              && el.textContent.split('\\n').filter((line) => line.trim()).length > 15).length,
  };
})()
"""

#: Pages that must show at least one formula: the chapters (under this prefix). The front
#: page, the plans of sections not yet reproduced and the references state results or
#: intentions, not models, and need none.
CHAPTER_PAGES = "_executed/"


# ----------------------------------------------------------------------------- static


class _AssetParser(html.parser.HTMLParser):
    """Collects the URLs a page would load by itself (not the links a reader follows)."""

    LOADS = {
        "script": ("src",),
        "link": ("href",),
        "img": ("src", "srcset"),
        "iframe": ("src",),
        "source": ("src", "srcset"),
        "video": ("src", "poster"),
        "audio": ("src",),
        "embed": ("src",),
        "object": ("data",),
    }

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in self.LOADS.get(tag, ()) and value:
                for url in value.split(",") if name == "srcset" else [value]:
                    self.urls.append((tag, url.strip().split(" ")[0]))


def is_remote(url: str) -> bool:
    """Whether loading ``url`` (absolute or relative) would leave this machine."""
    parsed = urllib.parse.urlsplit(url.strip())
    if parsed.scheme in LOCAL_SCHEMES:
        return False
    if parsed.scheme in ("", "file") and not parsed.netloc:
        return False  # a relative or file path
    return (parsed.hostname or "") not in LOCAL_HOSTS


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)['"]""")


def static_remote_assets(html_dir: Path) -> list[str]:
    """Remote URLs that the built site's HTML tags or stylesheets would load.

    Args:
        html_dir: The built site (``book/_build/html``).

    Returns:
        ``file: <tag> url`` lines, one per remote URL; empty when there is none.
    """
    found = []
    for page in sorted(html_dir.rglob("*.html")):
        parser = _AssetParser()
        parser.feed(page.read_text(errors="replace"))
        found += [
            f"{page.relative_to(html_dir)}: <{tag}> {url}"
            for tag, url in parser.urls
            if is_remote(url)
        ]
    for sheet in sorted(html_dir.rglob("*.css")):
        for match in _CSS_URL.finditer(sheet.read_text(errors="replace")):
            url = match.group(1) or match.group(2)
            if is_remote(url):
                found.append(f"{sheet.relative_to(html_dir)}: url({url})")
    return found


# ----------------------------------------------------------------------------- serving


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".woff": "font/woff",
        ".woff2": "font/woff2",
        ".js": "text/javascript",
    }

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib name)
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) while the block runs.

    Yields:
        The base URL, ``http://127.0.0.1:PORT/``.
    """
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


# ----------------------------------------------------------------------------- browser


def _high_fd(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered 10 or more; ``fd`` is closed."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class DevToolsError(RuntimeError):
    """Chromium answered a DevTools command with an error, or did not answer."""


class Chromium:
    """Headless Chromium driven over the DevTools protocol on a pipe.

    Chromium reads NUL-terminated JSON commands on file descriptor 3 and writes
    responses and events on descriptor 4 (``--remote-debugging-pipe``).
    """

    def __init__(self, binary: str, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self._profile = tempfile.TemporaryDirectory(prefix="hwml-chromium-")
        # Above 4, so that putting them on 3 and 4 in the child cannot overwrite one.
        to_browser_r, self._to_browser = (_high_fd(fd) for fd in os.pipe())
        self._from_browser, from_browser_w = (_high_fd(fd) for fd in os.pipe())

        def wire_pipes() -> None:  # runs in the child, before exec
            os.dup2(to_browser_r, 3)  # dup2 leaves the copies inheritable
            os.dup2(from_browser_w, 4)

        self._process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes,  # noqa: PLW1509 (no threads here yet)
            close_fds=False,  # keep the inheritable 3 and 4; Python's own fds are not
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        """Ask Chromium to quit, then make sure it has; remove the profile."""
        with contextlib.suppress(Exception):
            self.send("Browser.close", timeout_s=5)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DevToolsError("Chromium did not answer in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if ready:
                chunk = os.read(self._from_browser, 1 << 20)
                if not chunk:
                    raise DevToolsError(f"Chromium exited (status {self._process.poll()})")
                self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session: str | None = None,
        timeout_s: float | None = None,
    ) -> dict[str, Any]:
        """Send one command and wait for its result; events seen meanwhile are kept."""
        self._next_id += 1
        command: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            command["sessionId"] = session
        os.write(self._to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            message = self._read_message(deadline)
            if message.get("id") == self._next_id:
                if "error" in message:
                    raise DevToolsError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    def count(self, method: str, session: str, main_frame: bool = False) -> int:
        """How many ``method`` events of ``session`` were seen (of the main frame only)."""
        return sum(
            1
            for e in self.events
            if e.get("method") == method
            and e.get("sessionId") == session
            and not (main_frame and e["params"].get("frame", {}).get("parentId"))
        )

    def wait_for(
        self, method: str, session: str, times: int = 1, timeout_s: float | None = None
    ) -> None:
        """Wait until ``method`` was seen ``times`` times in ``session`` (seen ones count)."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while self.count(method, session) < times:
            self.events.append(self._read_message(deadline))

    def drain(self, quiet_s: float) -> None:
        """Collect events until none has come for ``quiet_s`` seconds."""
        while True:
            try:
                self.events.append(self._read_message(time.monotonic() + quiet_s))
            except DevToolsError as error:
                if "in time" in str(error):
                    return
                raise


def visit(browser: Chromium, url: str, screenshot: Path | None) -> dict[str, Any]:
    """Open ``url`` in a fresh tab and report what it requested and shows.

    Returns:
        ``requests``: every URL requested; ``failed``: ``url: reason`` of requests
        that failed or got an HTTP error; ``state``: what :data:`PAGE_STATE_JS`
        found.
    """
    browser.events.clear()
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
        "sessionId"
    ]
    try:
        browser.send("Network.enable", session=session)
        browser.send("Network.setCacheDisabled", {"cacheDisabled": True}, session=session)
        browser.send("Page.enable", session=session)
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired", session)
        # Follow redirects (index.html is a meta refresh to the root page) to their load.
        while True:
            browser.drain(quiet_s=0.3)
            navigations = browser.count("Page.frameNavigated", session, main_frame=True)
            if browser.count("Page.loadEventFired", session) >= navigations:
                break
            browser.wait_for("Page.loadEventFired", session, times=navigations)
        result = browser.send(
            "Runtime.evaluate",
            {"expression": PAGE_STATE_JS, "awaitPromise": True, "returnByValue": True},
            session=session,
        )
        browser.drain(quiet_s=0.5)  # late requests (fonts, lazy scripts)
        if screenshot is not None:
            metrics = browser.send("Page.getLayoutMetrics", session=session)
            size = metrics["cssContentSize"]
            # The viewport's width, not the content's: content inside sideways-scrolling
            # boxes would otherwise widen the capture and shift the page out of frame.
            width = metrics["cssLayoutViewport"]["clientWidth"]
            clip = {"x": 0, "y": 0, "width": width, "scale": 1}
            clip["height"] = min(size["height"], MAX_SCREENSHOT_HEIGHT)
            # A viewport as tall as the capture, at the same width: the page lays out as a
            # reader sees it and nothing scrolls sideways while it is captured.
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {
                    "width": int(width),
                    "height": int(clip["height"]),
                    "deviceScaleFactor": 1,
                    "mobile": False,
                },
                session=session,
            )
            browser.drain(quiet_s=0.3)
            shot = browser.send(
                "Page.captureScreenshot", {"format": "png", "clip": clip}, session=session
            )
            browser.send("Emulation.clearDeviceMetricsOverride", session=session)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        browser.drain(quiet_s=0.2)
    finally:
        browser.send("Target.closeTarget", {"targetId": target})

    requests: dict[str, str] = {}
    failed = []
    for event in browser.events:
        if event.get("sessionId") != session:
            continue
        params = event.get("params", {})
        if event["method"] == "Network.requestWillBeSent":
            requests[params["requestId"]] = params["request"]["url"]
        elif event["method"] == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f"{requests.get(params['requestId'], '?')}: {params.get('errorText')}")
        elif event["method"] == "Network.responseReceived":
            status = params["response"]["status"]
            if status >= 400:
                failed.append(f"{params['response']['url']}: HTTP {status}")
    if "exceptionDetails" in result:
        raise DevToolsError(f"{url}: page check failed: {result['exceptionDetails']}")
    return {
        "requests": list(requests.values()),
        "failed": failed,
        "state": result["result"]["value"],
    }


def page_problems(page: str, report: dict[str, Any]) -> list[str]:
    """What is wrong with one visited page; empty when nothing is."""
    problems = [f"{page}: remote request {u}" for u in report["requests"] if is_remote(u)]
    problems += [f"{page}: failed request {f}" for f in report["failed"]]
    state = report["state"]
    if not state["title"].strip():
        problems.append(f"{page}: empty <title>")
    if not state["h1"] or not state["h1Visible"]:
        problems.append(f"{page}: no visible first heading")
    elif not state["title"].startswith(state["h1"]):
        problems.append(f"{page}: title {state['title']!r} does not start with {state['h1']!r}")
    if state["mathSources"] and not state["mathRendered"]:
        problems.append(f"{page}: {state['mathSources']} math element(s), none typeset")
    if state["mathErrors"]:
        problems.append(f"{page}: {state['mathErrors']} MathJax error(s)")
    problems += [f"{page}: image not shown: {src}" for src in state["brokenImages"]]
    checks = [
        ("wideTables", "table(s) wider than the text column"),
        ("uncaptionedImages", "image(s) without a numbered caption"),
        ("nanCells", "table cell(s) reading NaN"),
        ("dashedOptions", "command(s) whose -- became a dash (not copyable)"),
        ("codeWalls", "visible code cell(s) over 15 lines"),
    ]
    for key, what in checks:
        if state.get(key):
            problems.append(f"{page}: {state[key]} {what}")
    if "mathSources" in state and not state["mathSources"] and page.startswith(CHAPTER_PAGES):
        problems.append(f"{page}: no equation (add the chapter's formulas)")
    return problems


def book_pages(html_dir: Path) -> list[str]:
    """``index.html`` and every page of the table of contents, as site paths."""
    sys.path.insert(0, str(BOOK))
    try:
        import build  # noqa: PLC0415 (book/build.py, beside this file)
    finally:
        sys.path.remove(str(BOOK))
    return ["index.html"] + [f"{name}.html" for name in build.load_book().docnames]


def scorecard_problems(html_dir: Path, root_page: str = "intro.html") -> list[str]:
    """Rows of the front page's scorecard whose number is not the chapters' current one.

    The scorecard is rendered from the executed chapters' glued values
    (``book/scorecard.py``); this checks that the built front page shows exactly those
    values, so a stale or hand-edited scorecard fails.
    """
    import html as html_lib  # noqa: PLC0415

    sys.path.insert(0, str(BOOK))
    try:
        import scorecard  # noqa: PLC0415 (book/scorecard.py, beside this file)
        import yaml  # noqa: PLC0415
    finally:
        sys.path.remove(str(BOOK))
    page = html_dir / root_page
    if not page.is_file():
        return [f"{root_page}: not built"]

    def plain(s: str) -> str:  # the rendered page has typographic quotes and dashes
        return s.replace("\u2019", "'").replace("\u2018", "'").replace("\u2013", "-")

    text = plain(html_lib.unescape(re.sub(r"<[^>]+>", "", page.read_text())))
    claims = yaml.safe_load((BOOK / "claims.yml").read_text())["claims"]
    return [
        f"{root_page}: scorecard row {row['section']} does not show {row['ours']!r}"
        for row in scorecard.rows(claims, BOOK / "_executed")
        if plain(row["ours"]) not in text
    ]


def find_chromium() -> str | None:
    """The Chromium binary: ``$CHROMIUM``, else Debian's, else one on the PATH."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("chromium") or shutil.which("chromium-browser")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="book/check_offline.py", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--html", type=Path, default=BOOK / "_build" / "html")
    parser.add_argument("--screenshots", type=Path, default=Path("/tmp/hwml-book"))
    parser.add_argument("--pages", nargs="+", help="site paths to visit (default: the toc's)")
    args = parser.parse_args(argv)

    html_dir = args.html.resolve()
    if not (html_dir / "index.html").is_file():
        print(f"[offline] {html_dir}/index.html not found: build the book first (make book-quick)")
        return 2
    problems = [f"static: {line}" for line in static_remote_assets(html_dir)]
    if (BOOK / "_executed").is_dir() and html_dir == (BOOK / "_build" / "html").resolve():
        problems += scorecard_problems(html_dir)

    pages = args.pages or book_pages(html_dir)
    problems += [f"{p}: not built" for p in pages if not (html_dir / p).is_file()]
    pages = [p for p in pages if (html_dir / p).is_file()]
    chromium = find_chromium()
    if chromium is None:
        print("[offline] Chromium not found: apt-get install chromium (make offline-check does)")
        return 2
    args.screenshots.mkdir(parents=True, exist_ok=True)
    with serve(html_dir) as base, Chromium(chromium) as browser:
        for page in pages:
            shot = args.screenshots / (page.replace("/", "__").removesuffix(".html") + ".png")
            report = visit(browser, urllib.parse.urljoin(base, page), shot)
            found = page_problems(page, report)
            problems += found
            state = report["state"]
            print(
                f"[offline] {page}: {len(report['requests'])} requests, all local"
                if not found
                else f"[offline] {page}: {len(found)} problem(s)",
                f"| {state['url'].removeprefix(base)} | h1 {state['h1']!r} | math {state['mathRendered']}/{state['mathSources']}"
                f" | images {state['images']} | {shot}",
            )
    if problems:
        print("[offline] FAILED:\n" + "\n".join(f"  {p}" for p in problems))
        return 1
    print(f"[offline] ok: {len(pages)} pages, no remote request, screenshots in {args.screenshots}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
