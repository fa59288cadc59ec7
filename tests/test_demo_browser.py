"""The demo page in a real headless Chromium: ``secbot demo`` as a subprocess, driven by Playwright.

Alert in → message on the page → alice clicks ✅ → "Closed by …" and the SIEM says closed →
bob clicks ✅ → only bob sees the refusal → ``@SecBot alert`` in a thread → the bot answers.
Terminated Bob's alert is paged and ticketed: the message says so, the header links the
PagerDuty and Jira stand-ins' pages.
Also: alert text stays text (no markup executes), typing survives re-renders, no page errors.

Uses Debian's ``/usr/bin/chromium`` (``.ci/chromium.sh`` installs it; never ``playwright
install``). Without it the test is skipped, unless ``CI`` is set: then it fails, so CI cannot
pass without having run it. Screenshots: ``artifacts/demo.png`` and, of an enriched alert,
``artifacts/demo-enrichment.png``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("SECBOT_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = ROOT / "artifacts" / "demo.png"
ENRICHMENT_SHOT = ROOT / "artifacts" / "demo-enrichment.png"
#: What the raw-result dumps looked like (``display_name=Payments, on_call=False``).
RAW_DUMP = re.compile(r"\b(display_name|project_id|on_call|employment_status|terminated|verdict)=")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ALICE, BOB = "U0TRIAGER", "U0VIEWER"
WAIT_MS = 15_000
LAUNCH_MS = 30_000
OPEN = "[data-testid=message]:has([data-testid=status-line][data-status=open])"


def _missing(reason: str) -> None:
    """Skip on a developer's machine; fail under CI, which must run this test."""
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{reason} and CI is set: run .ci/chromium.sh and install '.[dev]'")
    pytest.skip(f"{reason} (run .ci/chromium.sh; set CI=1 to make this a failure)")


@pytest.fixture(scope="module")
def chromium() -> Path:
    """The browser binary and the Playwright package, or a skip / failure saying which."""
    if not CHROMIUM.exists():
        _missing(f"chromium is not installed at {CHROMIUM}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the playwright Python package is not installed")
    return CHROMIUM


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=2) as response:
        body: dict[str, Any] = json.load(response)
        return body


def _wait_until_connected(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until SecBot holds a Socket Mode connection to the demo's emulator."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"secbot demo exited with {proc.returncode}")
        try:
            if _get(f"{base}/_emulator/status")["connections"] > 0:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"secbot demo did not connect to its emulator within {timeout} s")


@pytest.fixture(scope="module")
def demo(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``secbot demo`` on a free port, alerts every 2 s; yields its base URL."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("demo") / "demo.log"
    log = log_path.open("wb")
    options = f"--port {port} --interval 2 --count 6 --duration 60".split()
    command = [sys.executable, "-m", "secbot", "demo", *options]
    proc = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        try:
            _wait_until_connected(base, proc, timeout=20)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; its output:\n{log_path.read_text()[-4000:]}") from None
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _post(base: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{base}/_emulator/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        result: dict[str, Any] = json.load(response)
        return result


def _open_message_ts(page: Any, *, besides: str | None = None) -> str:
    """The ``ts`` of an open alert message on the page (waiting for one if needed)."""
    page.wait_for_function(
        """([selector, besides]) => [...document.querySelectorAll(selector)]
               .some((m) => m.dataset.ts !== besides)""",
        arg=[OPEN, besides],
        timeout=30_000,
    )
    for ts in page.locator(OPEN).evaluate_all("nodes => nodes.map(n => n.dataset.ts)"):
        if ts != besides:
            return str(ts)
    raise AssertionError("no open alert message")


def _message(page: Any, ts: str) -> Any:
    return page.locator(f'[data-testid=message][data-ts="{ts}"]')


def _alice_closes_one(page: Any, expect: Any) -> str:
    """alice ✅ → the status line says "Closed by"; ``@SecBot alert`` → SIEM status closed."""
    page.get_by_test_id("user-picker").select_option(ALICE)
    ts = _open_message_ts(page)
    message = _message(page, ts)
    message.get_by_test_id("react-white_check_mark").click()
    status = message.get_by_test_id("status-line")
    expect(status).to_contain_text("Closed by @Alice Triager", timeout=WAIT_MS)
    expect(status).to_have_attribute("data-status", "closed")
    expect(message.locator("[data-testid=reaction][data-name=white_check_mark]")).to_contain_text(
        "1"
    )
    box = message.get_by_test_id("thread-input")
    box.fill("@SecBot alert")
    box.press("Enter")
    expect(message.get_by_test_id("reply").filter(has_text="@SecBot alert")).to_have_count(1)
    answer = message.get_by_test_id("reply").filter(has_text="Status in the SIEM")
    expect(answer).to_contain_text("Status in the SIEM: closed", timeout=WAIT_MS)
    expect(answer.locator(".author")).to_have_text("SecBot")
    expect(box).to_have_value("")
    return ts


def _bob_is_refused(page: Any, expect: Any, closed_ts: str) -> None:
    """bob ✅ on another open alert → an ephemeral refusal only bob sees; still open."""
    page.get_by_test_id("user-picker").select_option(BOB)
    ts = _open_message_ts(page, besides=closed_ts)
    message = _message(page, ts)
    message.get_by_test_id("react-white_check_mark").click()
    refusal = page.get_by_test_id("ephemeral").filter(has_text="not in SECBOT_TRIAGERS")
    expect(refusal).to_have_count(1, timeout=WAIT_MS)
    expect(refusal).to_contain_text("Only visible to you")
    expect(message.get_by_test_id("status-line")).to_have_attribute("data-status", "open")
    page.get_by_test_id("user-picker").select_option(ALICE)
    expect(refusal).to_have_count(0)
    page.get_by_test_id("user-picker").select_option(BOB)
    expect(refusal).to_have_count(1)


def _alert_text_stays_text(page: Any, expect: Any, base: str) -> None:
    """Markup in message text is shown, never parsed: no element, no script ran."""
    payload = '<img src=x onerror="window.__pwned=1"> <script>window.__pwned=2</script> *x*'
    _post(base, "message", {"user": BOB, "text": payload, "channel": "C0SECALERTS"})
    shown = page.get_by_test_id("message").filter(has_text="onerror")
    expect(shown).to_have_count(1, timeout=WAIT_MS)
    expect(shown).to_contain_text('img src=x onerror="window.__pwned=1"')
    found = page.evaluate("""() => ({
        pwned: window.__pwned === undefined ? null : window.__pwned,
        elements: document.querySelectorAll('#messages img, #messages script, #messages a,'
                                            + ' #messages iframe').length})""")
    assert found == {"pwned": None, "elements": 0}


def _enrichment_reads_as_text(page: Any, expect: Any) -> None:
    """The seeded first alert: terminated Bob creates a key in Sandbox tools. The message says
    so in words a person expects (display name, "Terminated employee"), not ``key=value``."""
    alerts = page.get_by_test_id("message").filter(has=page.get_by_test_id("block-header"))
    bob = alerts.filter(has_text="Bob Ortiz").filter(has_text="GCP project").first
    expect(bob).to_be_visible(timeout=WAIT_MS)
    expect(bob).to_contain_text("Terminated employee")
    expect(bob).to_contain_text(re.compile(r"GCP project: Sandbox tools \(sandbox-tools\)"))
    expect(bob).to_contain_text("instance-type: internal")
    expect(bob).to_contain_text(re.compile(r"On call: (yes|no)"))
    # Markup stands out: "Terminated employee" is bold, not asterisks.
    expect(bob.locator("strong, b").filter(has_text="Terminated employee")).to_have_count(1)
    text = page.locator("#messages").inner_text()
    assert not RAW_DUMP.search(text), RAW_DUMP.search(text)
    bob.evaluate("node => node.scrollIntoView({block: 'start'})")
    page.screenshot(path=str(ENRICHMENT_SHOT))


def _escalations_are_visible(page: Any, expect: Any) -> None:
    """Terminated Bob's key is paged and ticketed: the message says so, and the header links
    the PagerDuty stand-in's incidents and the Jira stand-in's issues (issue 13)."""
    links = page.get_by_test_id("demo-link")
    expect(links).to_have_count(2, timeout=WAIT_MS)
    jira = links.filter(has_text="Jira issues")
    expect(jira).to_have_attribute("href", re.compile(r"^http://127\.0\.0\.1:\d+/issues/$"))
    expect(links.filter(has_text="PagerDuty incidents")).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1:\d+/$"))
    paged = page.get_by_test_id("message").filter(has_text="🚨 paged").filter(
        has_text="Bob Ortiz").first
    expect(paged).to_contain_text(re.compile(r"🚨 paged · Jira SEC-\d+"), timeout=WAIT_MS)
    key = re.search(r"SEC-\d+", paged.inner_text())
    assert key is not None
    issues = page.context.browser.new_page()  # its own context: the demo page stays
    try:
        issues.goto(jira.get_attribute("href"))
        expect(issues.get_by_role("link", name=key.group(0))).to_have_count(1)
        issues.get_by_role("link", name=key.group(0)).click()
        expect(issues.locator("h1")).to_contain_text(f"{key.group(0)}: GCP Service Account Key")
        issues.goto(links.filter(has_text="PagerDuty incidents").get_attribute("href"))
        expect(issues.locator("table")).to_contain_text("bob@example.com")
    finally:
        issues.close()


def _typing_survives_rerender(page: Any) -> None:
    """A draft in the channel box keeps its text and focus while new alerts arrive."""
    box = page.get_by_test_id("channel-input")
    box.click()
    box.type("@SecBot hel")
    version = page.evaluate("() => fetch('/_emulator/status').then(r => r.json())")["version"]
    page.wait_for_function(
        """(v) => fetch('/_emulator/status').then(r => r.json()).then(s => s.version > v)""",
        arg=version,
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(1500)  # at least one poll and re-render
    assert box.input_value() == "@SecBot hel"
    assert page.evaluate("() => document.activeElement.dataset.testid") == "channel-input"
    box.fill("")


async def test_page_and_assets_are_served_with_a_strict_policy() -> None:
    """No browser needed: ``/`` is the page by default, only known assets, CSP on each."""
    import aiohttp

    from secbot_emulators.slack import SlackEmulator

    async with SlackEmulator.running() as emu, aiohttp.ClientSession() as http:
        for path, kind in [
            ("/", "text/html"),
            ("/static/app.js", "text/javascript"),
            ("/static/style.css", "text/css"),
        ]:
            async with http.get(emu.base_url + path) as resp:
                assert resp.status == 200 and resp.content_type == kind
                assert (
                    "require-trusted-types-for 'script'" in resp.headers["Content-Security-Policy"]
                )
                assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
        for path in ["/static/slack_page.py", "/static/..%2Fslack.py", "/static/"]:
            async with http.get(emu.base_url + path) as resp:
                assert resp.status == 404


def _launch(pw: Any, chromium: Path) -> Any:
    """Headless Chromium; a launch that hangs (seen once, under heavy load) is retried once."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    for attempt in (1, 2):
        try:
            return pw.chromium.launch(
                executable_path=str(chromium), args=CHROMIUM_ARGS, timeout=LAUNCH_MS
            )
        except PlaywrightTimeout:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def test_demo_page_in_chromium(chromium: Path, demo: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = _launch(pw, chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        SCREENSHOT.parent.mkdir(exist_ok=True)
        try:
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(demo + "/")
            alert = page.get_by_test_id("message").filter(has=page.get_by_test_id("block-header"))
            expect(alert.first).to_be_visible(timeout=WAIT_MS)
            expect(alert.first.locator(".author")).to_have_text("SecBot")
            expect(page.get_by_test_id("connection")).to_contain_text("SecBot connected")
            _enrichment_reads_as_text(page, expect)
            _escalations_are_visible(page, expect)
            closed = _alice_closes_one(page, expect)
            _bob_is_refused(page, expect, closed)
            _alert_text_stays_text(page, expect, demo)
            _typing_survives_rerender(page)
            _message(page, closed).evaluate("node => node.scrollIntoView({block: 'start'})")
            page.screenshot(path=str(SCREENSHOT))
        except Exception:
            page.screenshot(path=str(SCREENSHOT.with_name("demo-failure.png")))
            raise
        finally:
            browser.close()
    assert errors == []
    assert SCREENSHOT.stat().st_size > 10_000
    assert ENRICHMENT_SHOT.stat().st_size > 10_000
