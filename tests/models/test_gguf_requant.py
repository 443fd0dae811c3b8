"""The converted copies of the answer model (`llm_weights`): `q8_0` holds the very same numbers
as the packaged GGUF and gives its answers; `ffn-iq4_nl` (the default) and `ffn-q4_0` (the fast
preset) have their feed-forward up/gate matrices in 4 bits, every other byte kept, and still
answer. Each is made once."""

from __future__ import annotations

import pytest

gguf = pytest.importorskip("gguf")

from rag.models.gguf import QWEN_05B, packaged_gguf  # noqa: E402
from rag.models.gguf_requant import (  # noqa: E402
    converted,
    q5_0_as_q8_0,
    quantize_iq4_nl,
    quantize_q4_0,
)


@pytest.fixture(scope="module")
def shipped():
    """The packaged GGUF, opened once: gguf-py parses its 151k-entry vocabulary (~7 s) on open."""
    return gguf.GGUFReader(packaged_gguf())


QUILLON = [
    {"role": "system", "content": "Answer from the source in one short sentence."},
    {"role": "user", "content": 'Source 1:\n"""\nThe harbour town of Quillon exports saffron and '
                                'blue glass.\n"""\n\nQuestion: What does Quillon export?'}]


def test_searched_scales_fit_closer_than_the_reference_quantiser_in_the_same_layout(shipped):
    """gguf-py reads our blocks back (so llama.cpp does), and on the model's own feed-forward
    weights their error is well under that of the reference's largest-value scale."""
    import numpy as np
    from gguf.quants import Q4_0, dequantize

    tensor = next(t for t in shipped.tensors if t.name == "blk.0.ffn_up.weight")
    values = dequantize(tensor.data[:256], tensor.tensor_type)
    ours = dequantize(quantize_q4_0(values), gguf.GGMLQuantizationType.Q4_0)
    reference = dequantize(Q4_0.quantize(values), gguf.GGMLQuantizationType.Q4_0)
    assert ours.shape == values.shape
    error = lambda approx: float(np.sqrt(np.mean((values - approx) ** 2)))  # noqa: E731
    assert error(ours) < 0.9 * error(reference)


@pytest.fixture(scope="module")
def q4_0_copy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fast-gguf")
    return converted(packaged_gguf(), QWEN_05B.sha256, "ffn-q4_0", out_dir=folder)


@pytest.mark.slow  # a 1.5-minute conversion; the default ffn-iq4_nl's (below) runs every time
def test_only_the_feed_forward_up_and_gate_matrices_change_to_q4_0(q4_0_copy, shipped):
    fast = gguf.GGUFReader(q4_0_copy)
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


def small_gguf(path):
    """A two-tensor GGUF (a Q8_0 feed-forward matrix and an F32 norm): seconds to convert."""
    import numpy as np
    from gguf.quants import quantize

    writer = gguf.GGUFWriter(path, arch="qwen2")
    writer.add_block_count(1)
    weights = np.random.default_rng(1).standard_normal((64, 128)).astype(np.float32)
    q8 = gguf.GGMLQuantizationType.Q8_0
    writer.add_tensor("blk.0.ffn_up.weight", quantize(weights, q8), raw_dtype=q8)
    writer.add_tensor("blk.0.attn_norm.weight", np.ones(128, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_a_damaged_copy_is_made_again_the_same(tmp_path):
    source = small_gguf(tmp_path / "small.gguf")
    folder = tmp_path / "cache"
    first = converted(source, "small-1", "ffn-q4_0", out_dir=folder)
    kept = first.read_bytes()
    assert [t.tensor_type.name for t in gguf.GGUFReader(first).tensors] == ["Q4_0", "F32"]
    with open(first, "r+b") as handle:  # cut short, as by a kill or a full disk
        handle.truncate(len(kept) // 2)
    again = converted(source, "small-1", "ffn-q4_0", out_dir=folder)
    assert again.read_bytes() == kept  # made again, and deterministic: the same file
    stamp = again.stat().st_mtime_ns
    reused = converted(source, "small-1", "ffn-q4_0", out_dir=folder)
    assert reused.stat().st_mtime_ns == stamp
    redone = converted(source, "small-2", "ffn-q4_0", out_dir=folder)  # a new source
    assert redone.read_bytes() == kept
    assert again.stat().st_mtime_ns != stamp


@pytest.mark.slow
def test_the_q4_0_copy_answers_from_its_source(q4_0_copy):
    from rag.llm import LlamaCppChat

    chat = LlamaCppChat(str(q4_0_copy), context_window=1024, threads=2)
    assert "saffron" in chat.chat(QUILLON, max_tokens=40).lower()


def test_the_fast_preset_asks_for_the_copy_and_answers_are_cached_apart(tmp_path):
    from eval.answer_cache import answer_fingerprint
    from rag.config import load_settings
    from rag.llm import LlamaCppChat, backend_from_settings

    settings = load_settings(tmp_path, preset="fast")
    assert settings.llm_weights == "ffn-q4_0"
    assert load_settings(tmp_path, preset="fast", llm_weights="shipped").llm_weights == "shipped"
    fast = backend_from_settings(settings)
    assert isinstance(fast, LlamaCppChat) and fast.weights == "ffn-q4_0"
    shipped = backend_from_settings(load_settings(tmp_path, llm_weights="shipped"))
    fast.__dict__["path"] = shipped.__dict__["path"] = packaged_gguf()  # no conversion needed here
    assert answer_fingerprint(fast) != answer_fingerprint(shipped)


def test_q5_0_blocks_become_q8_0_blocks_of_exactly_the_same_numbers(shipped):
    from gguf.quants import dequantize

    types = gguf.GGMLQuantizationType
    tensor = next(t for t in shipped.tensors if t.name == "blk.3.ffn_gate.weight")
    assert tensor.tensor_type == types.Q5_0
    rows = tensor.data[:64]
    as_q8 = q5_0_as_q8_0(rows)
    assert as_q8.shape == (64, rows.shape[1] // 22 * 34)
    assert (dequantize(as_q8, types.Q8_0) == dequantize(rows, types.Q5_0)).all()


@pytest.fixture(scope="module")
def q8_copy():
    """In the model cache, as users get it: made once per machine (~20 s), reused after."""
    return converted(packaged_gguf(), QWEN_05B.sha256, "q8_0")


def test_the_q8_0_copy_changes_only_the_layers_q5_0_matrices_and_answers_the_same(q8_copy,
                                                                                shipped):
    from rag.llm import LlamaCppChat

    types = gguf.GGMLQuantizationType
    copy = gguf.GGUFReader(q8_copy)
    copied = {t.name: t for t in copy.tensors}
    changed = {t.name for t in shipped.tensors if copied[t.name].tensor_type != t.tensor_type}
    assert changed == {t.name for t in shipped.tensors
                       if t.tensor_type == types.Q5_0 and t.name.startswith("blk.")}
    assert len(changed) == 132 and copied["token_embd.weight"].tensor_type == types.Q5_0
    shipped_answer = LlamaCppChat(context_window=1024, threads=2).chat(QUILLON, max_tokens=40)
    copy_answer = LlamaCppChat(str(q8_copy), context_window=1024, threads=2).chat(QUILLON,
                                                                                  max_tokens=40)
    assert "saffron" in shipped_answer.lower()
    assert copy_answer == shipped_answer


def test_a_model_with_nothing_to_convert_is_used_as_it_is(tmp_path):
    source = small_gguf(tmp_path / "small.gguf")  # Q8_0 and F32 only
    folder = tmp_path / "cache"
    assert converted(source, "small-1", "q8_0", out_dir=folder) == source
    assert not list(folder.glob("*.gguf"))
    assert converted(source, "small-1", "q8_0", out_dir=folder) == source  # remembered
    with pytest.raises(ValueError, match="llm_weights"):
        converted(source, "small-1", "q4_k", out_dir=folder)


def test_settings_default_to_the_iq4_nl_copy(tmp_path):
    from rag.config import load_settings
    from rag.llm import LlamaCppChat, backend_from_settings

    settings = load_settings(tmp_path)
    assert settings.llm_weights == "ffn-iq4_nl"
    chat = backend_from_settings(settings)
    assert isinstance(chat, LlamaCppChat) and chat.weights == "ffn-iq4_nl"


def test_iq4_nl_blocks_fit_closer_than_searched_q4_0_in_as_many_bytes(shipped):
    """Same 18 bytes a block; the non-uniform levels fit the weights' bell shape better."""
    import numpy as np
    from gguf.quants import dequantize

    types = gguf.GGMLQuantizationType
    tensor = next(t for t in shipped.tensors if t.name == "blk.0.ffn_gate.weight")
    values = dequantize(tensor.data[:256], tensor.tensor_type)
    iq4 = quantize_iq4_nl(values)
    assert iq4.nbytes == quantize_q4_0(values).nbytes
    error = lambda approx: float(np.sqrt(np.mean((values - approx) ** 2)))  # noqa: E731
    ours = error(dequantize(iq4, types.IQ4_NL))
    assert ours < 0.95 * error(dequantize(quantize_q4_0(values), types.Q4_0))


@pytest.fixture(scope="module")
def iq4_copy():
    """The default settings' copy, in the model cache: the first test that answers with the
    default settings would make it anyway (~55 s once per machine)."""
    return converted(packaged_gguf(), QWEN_05B.sha256, "ffn-iq4_nl")


def test_the_iq4_nl_copy_has_iq4_nl_feed_forward_and_q8_0_elsewhere_and_answers(iq4_copy,
                                                                                   shipped):
    from rag.llm import LlamaCppChat

    types = gguf.GGMLQuantizationType
    copy = gguf.GGUFReader(iq4_copy)
    copied = {t.name: t.tensor_type for t in copy.tensors}
    for tensor in shipped.tensors:
        if tensor.name.endswith(("ffn_up.weight", "ffn_gate.weight")):
            assert copied[tensor.name] == types.IQ4_NL, tensor.name
        elif tensor.tensor_type == types.Q5_0 and tensor.name.startswith("blk."):
            assert copied[tensor.name] == types.Q8_0, tensor.name
        else:
            assert copied[tensor.name] == tensor.tensor_type, tensor.name
    chat = LlamaCppChat(str(iq4_copy), context_window=1024, threads=2)
    assert "saffron" in chat.chat(QUILLON, max_tokens=40).lower()
