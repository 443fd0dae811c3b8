"""The whole app in a real browser (Debian's Chromium driven by Playwright, loopback only):
upload a PDF and recordings with progress, a streamed answer with source cards, the PDF opened
at its page, an answer searched only in one picked file, a recording played from its cited
second, a deleted source gone from the library and from answers, and a second collection that
shows none of the first one's chunks.

Screenshots go to tests/ui/artifacts/ (git-ignored). Slow: three uploads (Whisper) and about
six answers from the 0.5B model on the CPU.
"""

from __future__ import annotations

import json
import shutil
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.ui.conftest import ARTIFACTS, SAMPLE, make_pdf, start_ui, stop_ui

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SPEECH = Path(__file__).resolve().parents[3] / "shared" / "data" / "audio" / "librispeech_speech2text"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run",
        "--autoplay-policy=no-user-gesture-required"]
ANSWER_S = 180


def decode(path: Path, rate: int = 16000) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        out = [g.to_ndarray().reshape(-1) for f in container.decode(audio=0) for g in resampler.resample(f)]
        out += [g.to_ndarray().reshape(-1) for g in resampler.resample(None)]
    return np.concatenate(out)


def make_talk(path: Path) -> Path:
    """Two LibriSpeech sentences in one WAV: the second (pacing for an hour) starts near 0:11,
    so its chunk's cited second is not 0 (the index is built with small chunks)."""
    first = decode(SPEECH / "1089-134686-0000.flac")
    second = decode(SPEECH / "1089-134691-0001.flac")
    pcm = np.concatenate([first, np.zeros(16000, dtype=np.int16), second])
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(pcm.tobytes())
    return path


class Session:
    """The page and the steps a person takes, with a screenshot after each."""

    def __init__(self, page, shots: Path):
        self.page, self.shots, self.n = page, shots, 0

    def shot(self, name: str) -> Path:
        self.n += 1
        path = self.shots / f"{self.n:02d}_{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name).click()

    def ask(self, question: str, new_chat: bool = True) -> tuple[str, list[int]]:
        """Ask and wait for the final answer; returns its HTML and the text lengths seen while
        it streamed."""
        page = self.page
        self.tab("Chat")
        if new_chat:
            page.click("#new-chat")
            page.wait_for_function("document.querySelectorAll('#chatbot .message').length == 0")
        page.fill("#question textarea", question)
        page.press("#question textarea", "Enter")
        lengths: list[int] = []
        done = ("#chatbot .rag-sources", "#chatbot .rag-declined")
        deadline = time.monotonic() + ANSWER_S
        while time.monotonic() < deadline:
            bots = page.locator("#chatbot .message.bot")
            if bots.count():
                lengths.append(len(bots.last.inner_text()))
            if any(page.locator(s).count() for s in done):
                return bots.last.inner_html(), lengths
            time.sleep(0.2)
        raise AssertionError(f"no answer to {question!r} within {ANSWER_S} s")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it)")
@pytest.mark.skipif(not SPEECH.is_dir(), reason="../shared/data is absent beside this clone")
def test_upload_ask_open_play_delete_and_switch_collection(tmp_path, embedder, llm, free_port):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    pdf = make_pdf(tmp_path / "observatory.pdf")
    talk = make_talk(tmp_path / "talk.wav")
    mp3 = tmp_path / "jfk.mp3"
    shutil.copy(SAMPLE / "jfk.mp3", mp3)
    ui = start_ui(tmp_path / "root", embedder, llm, free_port(),
                  settings={"chunk_size": 32, "chunk_overlap": 4})
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            context = browser.new_context(viewport={"width": 1280, "height": 1100})
            page = context.new_page()
            s = Session(page, ARTIFACTS)
            page.goto(ui.url)
            page.wait_for_selector("#chatbot", timeout=60_000)

            # --- upload three files; progress shows, then one line per file and "done"
            s.tab("Upload")
            page.set_input_files("#upload-files input[type=file]", [str(pdf), str(mp3), str(talk)])
            page.wait_for_function(
                "document.querySelectorAll('#upload-files tr, #upload-files .file').length >= 3"
                " || document.body.innerText.includes('talk.wav')", timeout=60_000)
            page.click("#ingest")
            progress_seen = False
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline:
                if page.locator(".progress-text, .eta-bar, .progress-level").count():
                    if not progress_seen:
                        s.shot("upload_in_progress")
                    progress_seen = True
                if "done:" in page.input_value("#ingest-results textarea"):
                    break
                time.sleep(0.3)
            results = page.input_value("#ingest-results textarea")
            s.shot("upload_done")
            assert progress_seen
            assert "done: 3 added" in results, results
            for name in ("observatory.pdf", "jfk.mp3", "talk.wav"):
                assert f"added     {name}" in results, results

            # --- library lists them with type and chunk count
            s.tab("Library")
            page.wait_for_function("document.querySelector('#library-table').innerText.includes('talk.wav')",
                                   timeout=30_000)
            table = page.inner_text("#library-table")
            assert "observatory.pdf" in table and "pdf" in table and "mp3" in table
            s.shot("library")

            # --- a streamed answer with a card naming the PDF page; the PDF opens at that page
            answer, lengths = s.ask("Who built the observatory telescope?")
            assert len({n for n in lengths if n > 1}) >= 3, lengths  # it grew while streaming
            assert "Voss" in answer, answer
            card = page.locator("#chatbot .rag-card", has_text="observatory.pdf").first
            assert "page 2" in card.inner_text()
            assert card.locator("mark").count() >= 2  # the question's terms highlighted
            assert "dense #" in card.inner_text() and "bm25 #" in card.inner_text()
            s.shot("answer_pdf_page")
            card.locator("details.rag-preview summary").click()
            page.wait_for_function("el => el.complete && el.naturalWidth > 300",
                                   arg=card.locator("details.rag-preview img").element_handle(),
                                   timeout=30_000)
            card.locator("details.rag-preview img").scroll_into_view_if_needed()
            s.shot("pdf_page_2_with_passage")
            link = card.locator("a.rag-open")
            href = link.get_attribute("href")
            assert href.endswith("observatory.pdf#page=2"), href
            with context.expect_page() as opened:
                link.click()
            pdf_tab = opened.value
            assert pdf_tab.url.endswith("#page=2"), pdf_tab.url
            served = context.request.get(ui.url.rstrip("/") + href.split("#")[0])
            assert served.ok and served.body()[:5] == b"%PDF-"
            try:
                pdf_tab.wait_for_load_state(timeout=10_000)
                pdf_tab.screenshot(path=str(ARTIFACTS / f"{s.n + 1:02d}_pdf_opened_at_page_2.png"))
                s.n += 1
            except Exception:  # noqa: BLE001 - a headless PDF viewer may render nothing to capture
                pass
            pdf_tab.close()

            # --- "search only in": the chat's picker lists the uploads; with only the talk
            # picked, the telescope question is not answered from the PDF, and cleared again it is
            s.tab("Chat")
            page.click("#search-in input")
            page.keyboard.type("talk.wav")
            page.keyboard.press("Enter")
            page.wait_for_function(
                "document.querySelector('#search-in .token') &&"
                " document.querySelector('#search-in .token').innerText.includes('talk.wav')",
                timeout=30_000)
            page.click("#chatbot")  # close the options list
            answer, _ = s.ask("Who built the observatory telescope?")
            assert "rag-declined" in answer and "Voss" not in answer, answer
            s.shot("searched_only_in_talk")
            page.click("#search-in .token-remove.remove-all")
            page.wait_for_function("!document.querySelector('#search-in .token')", timeout=30_000)
            answer, _ = s.ask("Who built the observatory telescope?")
            assert "Voss" in answer, answer

            # --- recordings play from the cited second
            for question, name, least in [
                    ("What did the president ask of his fellow Americans?", "jfk.mp3", 0),
                    ("For how long had he paced up and down waiting?", "talk.wav", 8)]:
                answer, _ = s.ask(question)
                card = page.locator("#chatbot .rag-card", has_text=name).first
                assert card.count(), answer
                player = card.locator("audio.rag-player")
                src = player.get_attribute("src")
                start = int(src.rsplit("#t=", 1)[1])
                assert start >= least, src
                assert f"{start // 60}:{start % 60:02d}" in card.inner_text()
                player.scroll_into_view_if_needed()
                player.evaluate("a => a.play()")
                page.wait_for_function("a => a.currentTime > 0.5 + Number(a.src.split('#t=')[1])",
                                       arg=player.element_handle(), timeout=30_000)
                at = player.evaluate("a => a.currentTime")
                player.evaluate("a => a.pause()")
                assert start <= at < start + 10, (src, at)
                s.shot(f"playing_{name.replace('.', '_')}_from_{start}s")

            # --- Stop ends the answer being written; the session carries on
            s.tab("Chat")
            page.click("#new-chat")
            page.wait_for_function("document.querySelectorAll('#chatbot .message').length == 0")
            page.fill("#question textarea", "Describe the observatory telescope and who built it.")
            page.press("#question textarea", "Enter")
            page.wait_for_selector("#chatbot .message.bot", timeout=30_000)
            page.click("#stop")
            time.sleep(8)
            assert not page.locator("#chatbot .rag-sources").count()  # never finished
            stopped = page.locator("#chatbot .message.bot").last.inner_text()
            time.sleep(2)
            assert page.locator("#chatbot .message.bot").last.inner_text() == stopped
            s.shot("stopped")

            # --- per-session settings: BM25 only, and the cards show BM25 ranks alone
            s.tab("Settings")
            page.locator("#retrieval-mode label", has_text="bm25").click()
            page.click("#apply-settings")
            page.wait_for_function("document.querySelector('#settings-status').innerText.includes('Applied')",
                                   timeout=30_000)
            answer, _ = s.ask("Who built the observatory telescope?")
            card = page.locator("#chatbot .rag-card", has_text="observatory.pdf").first
            assert "bm25 #" in card.inner_text() and "dense #" not in card.inner_text(), answer
            s.shot("settings_bm25_only")

            # --- delete the PDF: gone from the library and from answers
            s.tab("Library")
            # a click on a row puts its path in the source box
            page.locator("#library-table [role=gridcell]", has_text="observatory.pdf").first.click()
            page.wait_for_function(
                "document.querySelector('#library-source textarea').value.endsWith('observatory.pdf')",
                timeout=30_000)
            page.fill("#library-source textarea", "observatory.pdf")
            page.click("#delete")
            page.wait_for_function("document.querySelector('#library-status').innerText.includes('Deleted')",
                                   timeout=30_000)
            page.wait_for_function("!document.querySelector('#library-table').innerText.includes('observatory.pdf')",
                                   timeout=30_000)
            s.shot("library_after_delete")
            area = ui.service.area("default")
            assert not (area / "observatory.pdf").exists()
            assert not list((area.parent / "previews").glob("observatory.pdf.*"))
            answer, _ = s.ask("Who built the observatory telescope?")
            assert "observatory.pdf" not in answer and "Voss" not in answer, answer
            s.shot("answer_after_delete")

            # --- the evaluation tab: rag eval on this collection, its table and plots
            data = tmp_path / "qa.jsonl"
            data.write_text(json.dumps({"id": "pace", "question": "How long had he paced up and down?",
                                        "reference_answer": "a full hour",
                                        "reference_contexts": ["For a full hour he had paced up and down"]})
                            + "\n")
            s.tab("Evaluation")
            page.set_input_files("#eval-dataset input[type=file]", str(data))
            page.wait_for_function("document.querySelector('#eval-dataset').innerText.includes('qa.jsonl')",
                                   timeout=30_000)
            page.click("#run-eval")
            page.wait_for_function("document.querySelector('#eval-summary textarea').value.includes('recall@5')",
                                   timeout=180_000)
            page.wait_for_function("[...document.querySelectorAll('#eval-plots img')].length > 0 && "
                                   "[...document.querySelectorAll('#eval-plots img')].every(i => i.complete && i.naturalWidth > 0)",
                                   timeout=30_000)
            s.shot("evaluation")

            # --- a new collection: none of the first one's chunks, in the library or answers
            page.fill("#new-collection textarea", "other")
            page.click("#create-collection")
            page.wait_for_function("document.querySelector('#notice').innerText.includes('other')",
                                   timeout=30_000)
            s.tab("Library")
            page.wait_for_function("!document.querySelector('#library-table').innerText.includes('jfk.mp3')",
                                   timeout=30_000)
            answer, _ = s.ask("What did the president ask of his fellow Americans?")
            for name in ("jfk.mp3", "talk.wav", "observatory.pdf"):
                assert name not in answer, answer
            assert "rag-declined" in answer or "rag-card" not in answer, answer
            s.shot("other_collection_sees_nothing")
            browser.close()
    finally:
        stop_ui(ui)
    assert len(list(ARTIFACTS.glob("*.png"))) >= 13
