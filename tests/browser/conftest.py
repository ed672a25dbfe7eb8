"""Browser fixtures: Debian's chromium driven by Playwright (sync API) against pytest-django's live server.

Playwright cannot download its own browsers on these machines, so the system ``/usr/bin/chromium`` is
launched. The real redis-server and Celery worker come from the integration fixtures (``worker``: the
live server sends the jobs to it instead of running them itself); they share the test database file,
so tests using them need ``django_db(transaction=True)``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Playwright's sync API keeps an event loop in this thread; Django's ORM refuses to run next to one
# unless told it is safe (it is: the loop only drives the browser, never Django code).
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.integration.conftest import fresh_worker, worker  # noqa: F401 - fixtures: the real workers, sent the jobs
from tests.realparts import wait_until  # noqa: F401 - re-exported for the browser tests

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


class PageProblems:
    """JavaScript errors, console errors and HTTP error answers seen by a page."""

    def __init__(self) -> None:
        self.js_errors: list[str] = []
        self.console_errors: list[str] = []
        self.http_errors: list[str] = []

    def all(self) -> list[str]:
        return self.js_errors + self.console_errors + self.http_errors


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Browser, page_problems: PageProblems) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.on("pageerror", lambda err: page_problems.js_errors.append(f"JS error: {err}"))
    page.on(
        "console",
        lambda msg: (
            page_problems.console_errors.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        ),
    )
    page.on(
        "response",
        lambda resp: (
            page_problems.http_errors.append(f"HTTP {resp.status} {resp.request.method} {resp.url}")
            if resp.status >= 400
            else None
        ),
    )
    yield page
    context.close()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def shot(page: Page, artifacts_dir: Path):
    """``shot("e2e-01-login")`` saves a full-page screenshot as test-artifacts/e2e-01-login.png."""

    def take(name: str) -> Path:
        path = artifacts_dir / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take
