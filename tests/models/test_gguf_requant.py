"""The fast copy of the answer model (`llm_weights = ffn-q4_0`): the packaged GGUF with its
feed-forward up/gate matrices in Q4_0, made once, every other byte kept, and it still answers."""

from __future__ import annotations

import shutil

import pytest

gguf = pytest.importorskip("gguf")

from rag.models.gguf import QWEN_05B, packaged_gguf  # noqa: E402
from rag.models.gguf_requant import ffn_q4_0  # noqa: E402


@pytest.fixture(scope="module")
def fast_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast-gguf")
    return ffn_q4_0(packaged_gguf(), QWEN_05B.sha256, out_dir=folder)


def test_only_the_feed_forward_up_and_gate_matrices_change(fast_copy):
    shipped, fast = gguf.GGUFReader(packaged_gguf()), gguf.GGUFReader(fast_copy)
    q4_0 = gguf.GGMLQuantizationType.Q4_0
    fast_tensors = {t.name: t for t in fast.tensors}
    assert [t.name for t in shipped.tensors] == [t.name for t in fast.tensors]
    changed = {t.name for t in shipped.tensors
               if fast_tensors[t.name].tensor_type != t.tensor_type}
    assert changed == {t.name for t in shipped.tensors
                       if t.name.endswith(("ffn_up.weight", "ffn_gate.weight"))}
    assert len(changed) == 48 and all(fast_tensors[n].tensor_type == q4_0 for n in changed)
    for tensor in shipped.tensors:
        if tensor.name not in changed:
            assert fast_tensors[tensor.name].data.tobytes() == tensor.data.tobytes(), tensor.name
    for key in ("tokenizer.chat_template", "qwen2.block_count", "tokenizer.ggml.eos_token_id"):
        assert fast.get_field(key).contents() == shipped.get_field(key).contents()


def test_a_damaged_copy_is_made_again_the_same(fast_copy, tmp_path):
    folder = tmp_path / "cache"
    folder.mkdir()
    kept = tmp_path / "first.gguf"
    shutil.copy(fast_copy, kept)
    for name in (fast_copy.name, fast_copy.name + ".json"):
        shutil.copy(fast_copy.parent / name, folder / name)
    with open(folder / fast_copy.name, "r+b") as handle:  # cut short, as by a kill or a full disk
        handle.truncate(1_000_000)
    again = ffn_q4_0(packaged_gguf(), QWEN_05B.sha256, out_dir=folder)
    assert again.read_bytes() == kept.read_bytes()  # deterministic: the same file every time
    assert ffn_q4_0(packaged_gguf(), QWEN_05B.sha256, out_dir=folder).stat().st_mtime_ns == \
        again.stat().st_mtime_ns  # intact: reused, not made again


def test_the_fast_copy_answers_from_its_source(fast_copy):
    from rag.llm import LlamaCppChat

    chat = LlamaCppChat(str(fast_copy), context_window=1024, threads=2)
    answer = chat.chat([
        {"role": "system", "content": "Answer from the source in one short sentence."},
        {"role": "user", "content": 'Source 1:\n"""\nThe harbour town of Quillon exports '
                                    'saffron and blue glass.\n"""\n\nQuestion: What does Quillon '
                                    'export?'}], max_tokens=40)
    assert "saffron" in answer.lower()


def test_the_fast_preset_asks_for_the_copy_and_answers_are_cached_apart(tmp_path):
    from eval.answer_cache import answer_fingerprint
    from rag.config import load_settings
    from rag.llm import LlamaCppChat, backend_from_settings

    settings = load_settings(tmp_path, preset="fast")
    assert settings.llm_weights == "ffn-q4_0"
    assert load_settings(tmp_path, preset="fast", llm_weights="shipped").llm_weights == "shipped"
    fast = backend_from_settings(settings)
    assert isinstance(fast, LlamaCppChat) and fast.weights == "ffn-q4_0"
    shipped = backend_from_settings(load_settings(tmp_path))
    fast.__dict__["path"] = shipped.__dict__["path"] = packaged_gguf()  # no conversion needed here
    assert answer_fingerprint(fast) != answer_fingerprint(shipped)
