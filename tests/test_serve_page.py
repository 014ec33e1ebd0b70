"""The page of `timbredb serve` in a real browser: Playwright driving Debian's chromium.

Playwright's own browser download cannot work here, so it is pointed at the
system binary (/usr/bin/chromium, which `.ci/run` installs); without it the
test skips and says so. The page is driven as a person would: a file is chosen
through the page's own file input, and what the page shows is compared with
what the API answers for the same file. A screenshot is saved for a human to
look at (``$TIMBREDB_SCREENSHOT_DIR``, else the test's temporary folder).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serve_helpers import Server, build_store, post_file, start_server
from tests.synth import lowpassed, noise, write

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parent.parent

pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install 'timbredb[serve]'")
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (timbredb[serve])")
if not CHROMIUM.is_file():
    pytest.skip(f"{CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium (.ci/run does)",
                allow_module_level=True)


def test_ci_installs_the_system_chromium() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    install = run.index("apt-get install -y --no-install-recommends chromium")
    assert install < run.index('bash -euo pipefail -c "$tests_command"')


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, synth_data_dir: Path) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("serve-page")
    db, files = build_store(root, synth_data_dir)
    server = start_server(db, synth_data_dir)
    yield {"server": server, "root": root, "files": files}
    assert server.stop() == 0, server.stderr()
    assert "Traceback" not in server.stderr(), server.stderr()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)
        try:
            yield b
        finally:
            b.close()


def test_upload_through_the_page_shows_the_apis_answer(served: dict[str, Any], browser: Any) -> None:
    server: Server = served["server"]
    sound = write(served["root"] / "uploads" / "dark noise.wav", lowpassed(noise(1.2, seed=21), 600))
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    outside: list[str] = []
    errors: list[str] = []
    # the page may talk to nothing but this server
    page.on("request", lambda r: None if r.url.startswith((server.base, "data:")) else outside.append(r.url))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(server.base + "/")
    page.wait_for_selector("#models input[value='socialfx-eq']")
    # the audio-only model is not offered for describing
    assert page.locator("#models input[value='mfcc']").count() == 0
    page.fill("#k", "6")
    page.set_input_files("#file", str(sound))

    card = page.locator("[data-testid='card-socialfx-eq']")
    card.locator("[data-testid='chart-socialfx-eq'] .bar-row").first.wait_for(timeout=30000)
    page.locator("[data-testid='upload-point']").wait_for(timeout=30000)
    page.wait_for_function("document.querySelectorAll('.similar li').length > 0", timeout=30000)
    page.wait_for_function("document.getElementById('status').textContent.startsWith('Described')", timeout=30000)

    api = post_file(server.port, "/api/describe", sound.name, sound.read_bytes(), model="socialfx-eq", k="6",
                    clips="5", vocabulary="study").json()[0]
    shown = card.locator(".bar-row")
    assert shown.count() == 6
    names = [shown.nth(i).get_attribute("data-descriptor") for i in range(6)]
    assert names == [d["descriptor"] for d in api["descriptors"]]
    # the top descriptor drawn, and its printed score, are the API's
    assert shown.first.locator(".bar-label").text_content() == api["descriptors"][0]["descriptor"]
    assert shown.first.locator(".bar-value").text_content() == f"{api['descriptors'][0]['score']:.3f}"
    assert card.locator("h2").text_content().endswith(sound.name)

    # the similar-clips list: the API's clips, in order, each with a player (their files are readable)
    items = card.locator(".similar li")
    assert [items.nth(i).get_attribute("data-clip") for i in range(items.count())] == \
        [c["clip_sha256"] for c in api["similar_clips"]]
    page.wait_for_function("document.querySelectorAll('.similar audio').length === 5", timeout=30000)
    src = card.locator(".similar audio").first.get_attribute("src")
    assert re.fullmatch(r"/api/clips/[0-9a-f]{64}/audio", src or "")

    # the map: every stored clip, the vocabulary's words, and the upload
    svg = card.locator("svg.map")
    assert svg.locator(".clip-point").count() == 9
    assert svg.locator(".word-point").count() >= 10
    assert svg.locator(".word-label", has_text=api["descriptors"][0]["descriptor"]).count() == 1
    assert svg.locator("[data-testid='upload-point']").count() == 1

    out_dir = Path(os.environ.get("TIMBREDB_SCREENSHOT_DIR") or served["root"])
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / "serve-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert outside == [] and errors == [], (outside, errors)


def test_the_page_shows_a_refused_upload_as_one_line(served: dict[str, Any], browser: Any) -> None:
    server: Server = served["server"]
    fake = served["root"] / "uploads" / "not audio.wav"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("definitely not a wav file\n" * 20)
    page = browser.new_page()
    page.goto(server.base + "/")
    page.wait_for_selector("#models input[value='socialfx-eq']")
    page.set_input_files("#file", str(fake))
    page.wait_for_selector("#status.error", timeout=30000)
    text = page.locator("#status").text_content() or ""
    assert text.startswith("not audio.wav: unreadable audio") and "\n" not in text
    assert page.locator(".card").count() == 0
