"""The documentation site: a strict build, generated reference pages, and a real browser.

The site (``mkdocs.yml``, ``docs/``) builds with ``--strict``, so a broken link, a missing
anchor or a missing mkdocstrings reference fails. The built home page and one guide are then
served over HTTP and opened in headless Chromium (Debian's ``chromium``, which ``.ci/run``
installs): each must render its title and the navigation, run the theme's JavaScript, log
nothing to the console, and request no missing file.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import BIN, ROOT

MKDOCS = BIN / "mkdocs"
GUIDES = (
    "Run the demo",
    "Evaluate your own model",
    "Train on a Slurm cluster",
    "Audit a paper from its release",
)
needs_mkdocs = pytest.mark.skipif(
    not MKDOCS.exists(), reason="mkdocs is not installed: pip install -e '.[docs]' (make install does)"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built in strict mode into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stderr[-4000:]}"
    return out


@needs_mkdocs
def test_home_and_guides_are_built(site: Path) -> None:
    for page in ("", "guides/demo", "guides/evaluate", "guides/slurm", "guides/audit", "reference/cli"):
        assert (site / page / "index.html").exists(), page
    home = (site / "index.html").read_text()
    links = dict(re.findall(r'<a href="([^"]+)">([^<]+)</a>', home))
    pages = ("guides/demo/", "guides/evaluate/", "guides/slurm/", "guides/audit/")
    for page, guide in zip(pages, GUIDES, strict=True):
        assert links.get(page) == guide, f"home page does not link {guide!r} to {page}: {links}"


@needs_mkdocs
def test_cli_reference_lists_every_subcommand_and_flag(site: Path) -> None:
    """The CLI page is generated from the real parser: every subcommand, every flag."""
    import argparse

    from safervlm.cli import build_parser

    html = (site / "reference" / "cli" / "index.html").read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 15
    for name, command in sub.choices.items():
        assert f"safervlm {name}</code>" in html, name
        for action in command._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            for flag in action.option_strings:
                assert f"<code>{flag}</code>" in html, f"{name} {flag}"


@needs_mkdocs
def test_config_reference_has_every_key_with_its_default(site: Path) -> None:
    """The config page is generated from the models: every key, dotted, with its description."""
    from safervlm.config.schema import config_schema

    html = (site / "reference" / "config" / "index.html").read_text()

    def keys(props: dict[str, dict[str, object]], prefix: str) -> Iterator[tuple[str, dict[str, object]]]:
        for key, spec in props.items():
            yield prefix + key, spec
            nested = spec.get("properties")
            if isinstance(nested, dict):
                yield from keys(nested, f"{prefix}{key}.")

    found = list(keys(config_schema()["properties"], ""))
    assert len(found) > 50
    for key, _ in found:
        assert f"<code>{key}</code>" in html, key
    assert "<code>judge.name</code>" in html and "Judge registry name." in html


@needs_mkdocs
def test_api_reference_renders_the_registries(site: Path) -> None:
    html = (site / "reference" / "api" / "index.html").read_text()
    for name in ("safervlm.benchmarks.registry", "safervlm.judge.base", "safervlm.metrics"):
        assert f'id="{name}"' in html, name


class _Recorder(http.server.SimpleHTTPRequestHandler):
    """A static file server that remembers every request's path and status."""

    seen: list[tuple[str, int]]

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.seen.append((self.path, int(code) if str(code).isdigit() else 0))

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - argparse's name
        pass


@pytest.fixture(scope="module")
def server(site: Path) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """The built site over HTTP on a free local port, with its request log."""
    seen: list[tuple[str, int]] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    finally:
        httpd.shutdown()
        httpd.server_close()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@needs_mkdocs
@pytest.mark.skipif(
    _chromium() is None,
    reason="no headless browser: Debian's chromium is not installed (.ci/run installs it)",
)
@pytest.mark.parametrize(("path", "title"), [("", "SaFeR-VLM pipeline"), ("guides/demo/", "Run the demo")])
def test_page_renders_in_headless_chromium(
    server: tuple[str, list[tuple[str, int]]], path: str, title: str, tmp_path: Path
) -> None:
    """Title, navigation, the theme's JavaScript ran, no console message, no missing file."""
    base, seen = server
    del seen[:]
    r = subprocess.run(
        [
            str(_chromium()), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
            "--virtual-time-budget=5000", "--dump-dom", f"{base}/{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    dom = r.stdout
    found = re.search(r"<title>(.*?)</title>", dom)
    assert found and found.group(1).startswith(title), found
    nav = re.findall(r'class="md-nav__link[^"]*"[^>]*>\s*(?:<[^>]+>\s*)*([^<]+?)\s*<', dom)
    for guide in GUIDES:
        assert guide in nav, f"navigation lacks {guide!r}: {nav}"
    # The theme's bundle marks the document when it runs (the static page says "no-js").
    root = re.search(r"<html[^>]*>", dom)
    assert root and "js-focus-visible" in root.group(0), f"the theme's JavaScript did not run: {root}"
    console = [line for line in r.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], "console messages:\n" + "\n".join(console)
    assert seen, "the browser requested nothing"
    missing = [(p, code) for p, code in seen if code >= 400]
    assert missing == [], f"missing files: {missing}"


def test_readme_is_a_short_front_door_whose_links_resolve() -> None:
    """README.md stays short (issue 27: at most 250 lines) and links only to files that exist."""
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    assert "make test" in readme and "make demo" in readme
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    assert len(links) >= 10
    for link in links:
        if "://" not in link:
            assert (ROOT / link).exists(), f"README links {link}, which does not exist"
    for guide in ("guides/demo.md", "guides/evaluate.md", "guides/slurm.md", "guides/audit.md"):
        assert f"docs/{guide}" in readme, guide
