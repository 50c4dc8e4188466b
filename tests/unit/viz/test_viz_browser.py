"""The HTML attention view in real headless Chromium: renders without console errors, switches
group, layer and heads, answers hovering, has a working model view, and stays responsive at 1,024
tokens.

Needs the Debian ``chromium`` package (or ATTNLAB_CHROMIUM=/path/to/chrome) and the ``playwright``
Python package, which drives the installed browser (``playwright install`` is not needed). Skips
cleanly when either is missing. Screenshots go to the test's tmp dir, or ATTNLAB_SCREENSHOT_DIR.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from attnlab.interp import prepare_inputs, run_with_capture
from attnlab.models import GPT, from_name
from attnlab.viz import save_attention_view

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs `pip install playwright` (it drives the system chromium)"
)

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ROW_H, PAD = 18, 8  # must match attention_view.js


def chromium_path() -> str | None:
    env = os.environ.get("ATTNLAB_CHROMIUM")
    if env:
        return env if Path(env).exists() else None
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="module")
def browser():
    exe = chromium_path()
    if exe is None:
        pytest.skip("no Chromium found: apt-get install chromium (or set ATTNLAB_CHROMIUM)")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=FLAGS)
        yield b
        b.close()


class Page:
    """A page with its console errors collected."""

    def __init__(self, browser, path: Path) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 860})
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", self._request)
        self.page.goto(path.as_uri())
        self.page.wait_for_selector("body[data-ready='1']", timeout=20_000)

    def _request(self, request) -> None:
        if not request.url.startswith(("file:", "data:")):
            self.errors.append(f"network request: {request.url}")

    def data(self, key: str) -> str:
        return self.page.evaluate(f"document.body.dataset.{key}")

    def ink(self) -> int:
        """Non-white pixels on the head-view canvas."""
        return self.page.evaluate("""() => {
            const c = document.getElementById('hv-canvas');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0 && d[i] + d[i + 1] + d[i + 2] < 720) n++;
            return n; }""")

    def hover_query(self, i: int) -> None:
        box = self.page.locator("#hv-scroll").bounding_box()
        top = self.page.evaluate("document.getElementById('hv-scroll').scrollTop")
        self.page.mouse.move(box["x"] + 40, box["y"] + PAD + i * ROW_H + ROW_H / 2 - top)


def _shot_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("ATTNLAB_SCREENSHOT_DIR", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_view_renders_switches_layer_and_heads(browser, transformer_and_tokenizer, tmp_path):
    model, tok = transformer_and_tokenizer
    prepared = prepare_inputs(model, tok, "the cat sat on the mat.", target="a dog ran away.")
    _, cap = run_with_capture(model, *prepared.args, **prepared.kwargs)
    view = Page(browser, save_attention_view(tmp_path / "view.html", cap, prepared, title="tiny transformer"))
    page = view.page
    assert (view.data("group"), view.data("layer"), view.data("heads")) == ("encoder.self", "0", "0,1,2,3")
    assert view.ink() > 500

    page.select_option("#group", label="decoder.cross")
    page.select_option("#layer", "1")
    page.click("#head-2")
    assert (view.data("group"), view.data("layer"), view.data("heads")) == ("decoder.cross", "1", "0,1,3")

    before = view.ink()
    view.hover_query(3)
    page.wait_for_function("document.getElementById('status').textContent.includes('(#3)')")
    status = page.inner_text("#status")
    assert "query" in status and "attends to" in status
    assert view.ink() != before  # lines redrawn for the hovered token
    shot = _shot_dir(tmp_path) / "attention_head_view.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 10_000

    page.click("#tab-model")
    assert view.data("view") == "model"
    assert page.locator(".cell").count() == 2 * 4
    page.screenshot(path=str(_shot_dir(tmp_path) / "attention_model_view.png"))
    page.locator(".cell").nth(5).click()  # layer 1, head 1
    assert (view.data("view"), view.data("layer"), view.data("heads")) == ("head", "1", "1")
    assert view.errors == []


def test_view_stays_responsive_at_1024_tokens(browser, tmp_path):
    torch.manual_seed(0)
    model = GPT(from_name("gpt-tiny", max_len=1024)).eval()
    ids = torch.randint(0, 128, (1, 1024))
    _, cap = run_with_capture(model, ids)
    labels = [f"t{i}" for i in range(1024)]
    from attnlab.viz import AttentionGroup

    groups = {"self": AttentionGroup(cap.stack()[:, 0], labels, labels, cap.layers(), list(range(4)))}
    path = save_attention_view(tmp_path / "long.html", groups)
    assert path.stat().st_size < 12_000_000
    start = time.perf_counter()
    view = Page(browser, path)
    load_s = time.perf_counter() - start
    page = view.page
    assert load_s < 15
    page.evaluate(f"document.getElementById('hv-scroll').scrollTop = {990 * ROW_H}")
    view.hover_query(1000)
    page.wait_for_function("document.getElementById('status').textContent.includes('(#1000)')")
    per_redraw_ms = page.evaluate("window.attnView.timeRedraw(10)")
    page.select_option("#layer", "1")
    assert view.data("layer") == "1"
    page.screenshot(path=str(_shot_dir(tmp_path) / "attention_1024_tokens.png"))
    assert per_redraw_ms < 150, f"a redraw at 1,024 tokens took {per_redraw_ms:.1f} ms"
    page.click("#tab-model")
    model_ms = page.evaluate("window.attnView.timeRedraw(3)")
    assert model_ms < 500, f"a model-view redraw took {model_ms:.1f} ms"
    assert view.errors == []
