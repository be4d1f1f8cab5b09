"""Browser fixtures: Debian's headless chromium driven by Playwright, and the explorer harness
served from static/ with generated trajectories under /_data/."""

import json
from pathlib import Path

import pytest

from .harness import launch_chromium, serve_static
from .synthetic import make_repeated_trajectory, make_trajectory

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture
def chromium():
    """A browser per test: Playwright's sync API allows one running instance at a time, and other
    modules here start their own."""
    with launch_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors: {errors}"


@pytest.fixture(scope="session")
def trajectories(tmp_path_factory):
    """Generated trajectories, written once per session: name -> (data, file name)."""
    out = tmp_path_factory.mktemp("trajectories")
    made = {
        "small": make_trajectory(60),
        "mismatch": make_trajectory(60, final_mismatch=True),
        "partial": make_trajectory(60, finished=False),
        "big": make_trajectory(10_000, prompt_words=30),
        "repeated": make_repeated_trajectory(),
    }
    for name, data in made.items():
        (out / f"{name}.json").write_text(json.dumps(data))
    return out, made


@pytest.fixture(scope="session")
def harness(trajectories):
    data_dir, made = trajectories
    with serve_static(data_dir) as base:
        yield Harness(base, made)


class Harness:
    def __init__(self, base: str, data: dict):
        self.base = base
        self.data = data

    def url(self, name: str | None = None, hash_: str = "") -> str:
        src = f"?src=/_data/{name}.json" if name else ""
        return f"{self.base}/explorer/harness.html{src}{hash_}"

    def open(self, page, name: str | None, hash_: str = ""):
        page.goto(self.url(name, hash_))
        if name:
            page.wait_for_selector("#explorer[data-ready='1']", timeout=60_000)
        else:
            page.wait_for_function("() => typeof window.loadTrajectory === 'function'")
        return page


def screenshot(page, name: str, full_page: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path
