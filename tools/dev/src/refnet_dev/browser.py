"""What every browser test of refnet's people-facing pages shares: Debian's chromium driven by Playwright
(never a downloaded browser build), a phone-sized page that records what the CSP refused, signing in on the
real Keycloak's page, the axe-core accessibility check in the same browser, and screenshots kept by the run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from refnet_dev.keycloak import DEV_PASSWORD
from refnet_dev.util import repo_root

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PHONE = {"width": 390, "height": 844}
# The probe's flags: headless, no sandbox as root, and nothing that reaches for the (closed) internet.
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
AXE_DIR = repo_root() / ".cache" / "npm" / "axe-core"
# Where a test run keeps its screenshots (ignored by git): one PNG per page a story visits.
SCREENSHOTS = repo_root() / "var" / "screenshots"


@contextmanager
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "no chromium: run scripts/install_browser.sh (as root) first"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def phone_page(browser: Any, locale: str = "vi-VN") -> Iterator[Any]:
    """A new phone-sized page in its own context; fails the test if the CSP refused anything on it."""
    context = browser.new_context(viewport=PHONE, locale=locale, timezone_id="Asia/Ho_Chi_Minh")
    page = context.new_page()
    refused: list[str] = []
    page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    try:
        yield page
        assert not refused, refused
    finally:
        context.close()


def sign_in(page: Any, app_url: str, issuer: str, username: str, path: str = "/") -> Any:
    """Opens `app_url + path`, is sent to Keycloak's sign-in page, signs in there as a person does, and comes
    back; returns the last navigation's response."""
    page.goto(app_url + path)
    assert page.url.startswith(issuer), f"not sent to sign in: {page.url}"
    page.fill("#username", username)
    page.fill("#password", DEV_PASSWORD)
    with page.expect_navigation(url=re.compile(re.escape(app_url) + ".*")) as navigation:
        page.click("#kc-login")
    return navigation.value


def axe_script() -> Path:
    """axe-core from the npm registry, pinned in tests/web/package-lock.json, installed once with npm ci."""
    script = AXE_DIR / "node_modules" / "axe-core" / "axe.min.js"
    if not script.exists():
        AXE_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(repo_root() / "tests" / "web" / name, AXE_DIR / name)
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=AXE_DIR, check=True)
    return script


def accessibility_problems(page: Any, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of those impacts on the page as it is now, one line each (rule, impact, where)."""
    # Evaluated through the DevTools protocol, which the page's CSP does not govern (a script tag it would refuse).
    page.evaluate(axe_script().read_text(encoding="utf-8") + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation.get("impact") in impacts:
            targets = [json.dumps(node.get("target")) for node in violation.get("nodes", [])[:3]]
            found.append(f"{violation['id']} ({violation['impact']}): {violation['help']} at {', '.join(targets)}")
    return found


def keep_screenshot(page: Any, name: str) -> Path:
    """Saves the whole page as var/screenshots/<name>.png (kept after the run) and returns the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^a-z0-9_-]+', '-', name.lower())}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
