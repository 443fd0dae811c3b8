"""The HTML report opens in a real browser (Debian's Chromium driven by Playwright, no network):
its tables are there, every plot image loads, and a screenshot is taken."""

from __future__ import annotations

import json
import shutil

import pytest

from eval.datasets import load_dataset
from eval.report import write_report
from eval.runner import run_eval

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CASES = [
    {"id": "green", "question": "How long should green tea steep?", "reference_answer": "2 minutes",
     "reference_contexts": ["steep green tea for 2 minutes"]},
    {"id": "mars", "question": "What is the population of the largest city on Mars?",
     "answerable": False},
]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
def test_report_opens_in_chromium_with_its_plots(sample_rag, tmp_path):
    from playwright.sync_api import sync_playwright

    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CASES))
    run = run_eval(sample_rag, load_dataset(path), answers=False, progress=False)
    html = write_report(run, tmp_path / "report")
    shot = tmp_path / "report.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.goto(html.resolve().as_uri())
        assert page.title() == f"rag eval: {run.dataset.name}"
        text = page.inner_text("body")
        assert "recall@5" in text and "mrr@10" in text and "not scored" in text
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.src, e.naturalWidth])")
        assert images and all(width > 0 for _, width in images), images
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 20_000
