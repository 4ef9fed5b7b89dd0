"""Browser tests of the playground: Debian's chromium driven by Playwright, against
the servers `make browser` starts (backend and edge, real model)."""
import os
import pathlib
import shutil

import pytest
from playwright.sync_api import sync_playwright

BACKEND = os.environ.get("KOKORO_URL", "http://127.0.0.1:8880")
EDGE = os.environ.get("KOKORO_EDGE_URL", "http://127.0.0.1:3000")
NN = os.environ.get("KOKORO_NN_URL")
# Screenshots land here for a person to look at (README links the desktop one).
SHOTS = pathlib.Path(__file__).resolve().parents[2] / "target" / "playground"


@pytest.fixture(scope="session")
def browser():
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is not installed (make browser installs Debian's package)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=exe,
            # Root in CI: no user namespaces for the sandbox. Audio plays to no device
            # but the Web Audio clock runs, so playback can be observed.
            args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required", "--mute-audio"],
        )
        yield b
        b.close()


class Page:
    """A page with its console and page errors collected."""

    def __init__(self, browser, **ctx):
        self.context = browser.new_context(accept_downloads=True, **ctx)
        self.page = self.context.new_page()
        self.errors = []
        self.requests = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))

    def open(self, base):
        self.page.goto(base + "/")
        # The voice list has loaded from /v1/audio/voices.
        self.page.wait_for_selector("#voice-list option[value=af_heart]", state="attached")
        return self.page


@pytest.fixture
def page(browser):
    p = Page(browser, viewport={"width": 1100, "height": 1400})
    yield p
    p.context.close()


@pytest.fixture
def phone(browser):
    p = Page(browser, viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    yield p
    p.context.close()
