"""Render a local HTML file in headless Chromium: a screenshot, and the DOM as the browser built it.

Shared by the browser tests (``from _browser import render_in_chromium``; pytest puts ``tests/`` on ``sys.path``
because ``tests/conftest.py`` lives there). Without Chromium a test skips, except under ``CI=true``, where it fails:
``.ci/run`` installs Debian's ``chromium``, so CI can never pass by skipping.
"""

from __future__ import annotations

import html
import os
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import pytest

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_S = 60
PathLike = Union[str, "os.PathLike[str]"]


def chromium_binary() -> str:
    """The Chromium executable; skips the test without one (fails under ``CI=true``)."""
    found = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if found is None:
        message = (
            f"Chromium is not installed (no {CHROMIUM}, no `chromium` on PATH); the browser tests need it, and "
            "`.ci/run` must install Debian's chromium (apt-get install -y chromium)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def _run(args: List[str]) -> str:
    """Run Chromium with a fresh profile and a time limit; returns stdout, fails the test on error or timeout."""
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        command = [chromium_binary(), *FLAGS, f"--user-data-dir={profile}", *args]
        process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            stdout, stderr = process.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # Chromium's helpers share the session it leads
            process.communicate()
            pytest.fail(f"Chromium took longer than {TIMEOUT_S} s: {' '.join(command)}")
    if process.returncode != 0:
        pytest.fail(f"Chromium exited with {process.returncode}: {' '.join(command)}\n{stderr[-2000:]}")
    return stdout


def render_in_chromium(html_path: PathLike, screenshot_path: PathLike) -> str:
    """Load ``html_path`` in headless Chromium (1200×800): write a PNG screenshot, return the dumped DOM.

    Fails the test if Chromium errors, times out (60 s per run) or writes no screenshot.
    """
    url = Path(html_path).resolve().as_uri()
    screenshot = Path(screenshot_path).resolve()
    _run([f"--screenshot={screenshot}", "--window-size=1200,800", url])
    if not screenshot.is_file() or screenshot.stat().st_size == 0:
        pytest.fail(f"Chromium wrote no screenshot to {screenshot}")
    return _run(["--dump-dom", url])


_COMPUTED_SCRIPT = """<script>
setTimeout(function () {{
  var found = document.getElementsByClassName({css_class});
  for (var i = 0; i < found.length; i++) {{
    var style = getComputedStyle(found[i]);
    found[i].setAttribute("data-computed-background", style.backgroundColor);
    found[i].setAttribute("data-computed-color", style.color);
  }}
  var text = document.createElement("pre");
  text.id = "computed-visible-text";
  text.textContent = document.body.innerText;
  document.body.appendChild(text);
}}, {wait_ms});
</script>"""


def computed_dom(html_path: PathLike, css_class: str, wait_ms: int = 0) -> str:
    """The DOM of ``html_path`` as Chromium rendered it, with each element of ``css_class`` carrying its computed
    ``data-computed-background`` and ``data-computed-color``, and the page's visible text (``innerText``) in a
    ``<pre id="computed-visible-text">`` (see :func:`visible_text`).

    A copy of the page with a script appended, which records all that after ``wait_ms`` milliseconds of virtual
    time (so that scripts such as MathJax finish first), is loaded from the page's own directory (relative links
    keep working) and removed afterwards.
    """
    source = Path(html_path)
    script = _COMPUTED_SCRIPT.format(css_class=repr(css_class), wait_ms=int(wait_ms))
    copy = source.with_name(f".computed-{source.name}")
    copy.write_text(source.read_text(encoding="utf-8").replace("</body>", script + "</body>", 1), encoding="utf-8")
    try:
        return _run([f"--virtual-time-budget={int(wait_ms) + 2000}", "--dump-dom", copy.resolve().as_uri()])
    finally:
        copy.unlink()


def visible_text(dom: str) -> str:
    """The page's visible text that :func:`computed_dom` recorded."""
    start = dom.index('<pre id="computed-visible-text">') + len('<pre id="computed-visible-text">')
    return html.unescape(dom[start:dom.index("</pre>", start)])


class _Collector(HTMLParser):
    def __init__(self, css_class: str) -> None:
        super().__init__()
        self.css_class = css_class
        self.found: List[Dict[str, Optional[str]]] = []
        self.title: Optional[str] = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: List[Tuple[str, Optional[str]]]) -> None:
        attributes = dict(attrs)
        if self.css_class in (attributes.get("class") or "").split():
            self.found.append(attributes)
        self._in_title = tag == "title"

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data


def elements_with_class(dom: str, css_class: str) -> List[Dict[str, Optional[str]]]:
    """The attributes of every element of ``dom`` whose class list holds ``css_class``, in document order."""
    collector = _Collector(css_class)
    collector.feed(dom)
    return collector.found


def document_title(dom: str) -> Optional[str]:
    """The text of ``dom``'s ``<title>`` (as the browser left it after running any scripts)."""
    collector = _Collector("")
    collector.feed(dom)
    return collector.title
