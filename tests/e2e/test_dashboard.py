"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against
`metalfleet up --lab 4`. Log in with the admin token, open the rack view, click a node,
deploy it with the lab image (confirming), and watch it reach active without reloading;
then undeploy it and watch it clean back to available.

Screenshots of every page land in test-artifacts/dashboard/. A missing Chromium or
Playwright fails the test; it never skips.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.labproc import Lab

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
NODE = "lab-gpu-01"
IMAGE = "lab-ubuntu-22.04"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    running = Lab(tmp_path / "data", f"sqlite:///{tmp_path / 'metalfleet.db'}", size=4)
    running.start()
    yield running
    if running.process and running.process.poll() is None:
        running.stop()


def _wait_available(lab: Lab, token: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    while True:
        items = httpx.get(f"{lab.url}/v1/nodes", headers=headers, timeout=10).json()["items"]
        if len(items) == lab.size and all(n["state"] == "available" for n in items):
            return
        failed = [(n["name"], n["state"], n["last_error"]) for n in items
                  if n["state"].endswith("-failed")]
        assert not failed, failed
        assert time.monotonic() < deadline, [(n["name"], n["state"]) for n in items]
        time.sleep(0.5)


def _browser_parts() -> Any:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the Playwright package is missing ({exc}): .venv/bin/pip install playwright")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return sync_playwright


def test_dashboard_deploys_a_node_from_the_rack_view(lab: Lab, tmp_path: Path) -> None:
    sync_playwright = _browser_parts()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    token = (lab.data_dir / "admin.token").read_text().strip()
    _wait_available(lab, token)
    errors: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                             headless=True)
        try:
            context = browser.new_context(viewport={"width": 1440, "height": 1000})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            def shot(name: str) -> None:
                page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

            page.goto(f"{lab.url}/")
            assert page.url.startswith(f"{lab.url}/ui/login")
            shot("01-login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_selector("#count-total")
            assert page.inner_text("#count-total") == str(lab.size)
            assert page.inner_text("#count-free") == str(lab.size)
            shot("02-overview")

            page.click("nav >> text=Racks")
            page.wait_for_selector(f"#slot-{NODE}")
            assert page.locator(".rack-card").count() >= 2
            shot("03-racks")
            page.click(f"#slot-{NODE}")
            page.wait_for_url(f"**/ui/nodes/{NODE}")
            assert page.inner_text("#node-state") == "available"
            assert page.locator("#gpus tbody tr").count() == 8
            shot("04-node-available")

            page.select_option("#deploy-image", IMAGE)
            page.click("button[data-action=deploy]")
            page.wait_for_selector("#confirm-dialog[open]")
            assert IMAGE in page.inner_text("#confirm-text")
            page.click("#confirm-ok")
            page.wait_for_url(f"**/ui/nodes/{NODE}?msg=*")
            assert page.inner_text("#node-state") in ("deploying", "active")
            # From here on the page must update itself: a reload would drop this marker.
            page.evaluate("window.__noReload = 'still here'")
            page.wait_for_selector("#node-progress", timeout=15_000)
            shot("05-node-deploying")
            page.wait_for_function(
                "document.getElementById('node-state').textContent.trim() === 'active'",
                timeout=60_000, polling=250)
            assert page.evaluate("window.__noReload") == "still here"
            assert IMAGE in page.inner_text("#node-live")
            assert "deploying finished" in page.inner_text("#timeline")
            shot("06-node-active")

            page.click("nav >> text=Nodes")
            page.wait_for_selector(f"#row-{NODE}")
            assert "active" in page.inner_text(f"#row-{NODE}")
            shot("07-nodes")
            page.click("nav >> text=Tenants")
            page.wait_for_selector("#tenants")
            shot("08-tenants")
            page.click("nav >> text=Images")
            page.wait_for_selector(f"text={IMAGE}")
            shot("09-images")
            page.click("nav >> text=Overview")
            page.wait_for_selector("#count-allocated")
            assert page.inner_text("#count-allocated") == "1"
            shot("10-overview-after")

            # And back: undeploy from the node page, watch releasing -> cleaning -> available.
            page.goto(f"{lab.url}/ui/nodes/{NODE}")
            page.click("button[data-action=undeploy]")
            page.wait_for_selector("#confirm-dialog[open]")
            page.click("#confirm-ok")
            page.wait_for_url(f"**/ui/nodes/{NODE}?msg=*")
            page.evaluate("window.__noReload = 'still here'")
            page.wait_for_function(
                "['cleaning', 'available'].includes("
                "document.getElementById('node-state').textContent.trim())",
                timeout=30_000, polling=100)
            shot("11-node-cleaning")
            page.wait_for_function(
                "document.getElementById('node-state').textContent.trim() === 'available'",
                timeout=60_000, polling=250)
            assert page.evaluate("window.__noReload") == "still here"
            assert "cleaning finished" in page.inner_text("#timeline")
            shot("12-node-available-again")

            page.click("text=Log out")
            page.wait_for_url("**/ui/login")
            page.goto(f"{lab.url}/ui/racks")
            assert "/ui/login" in page.url
        finally:
            browser.close()
    assert not errors, errors
