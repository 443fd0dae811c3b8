"""Missing or corrupt model files stop with a message naming the file and the fix."""

import hashlib

import pytest

from rag.errors import ModelFileError
from rag.models.cache import move_into_place, staging_folder, verified_assembly


def make_parts(tmp_path, contents):
    parts = []
    for i, data in enumerate(contents):
        part = tmp_path / f"part{i}.bin"
        part.write_bytes(data)
        parts.append(part)
    return parts


def test_assembly_verifies_and_is_reused(tmp_path):
    parts = make_parts(tmp_path, [b"abc" * 1000, b"def" * 1000])
    sha = hashlib.sha256(b"abc" * 1000 + b"def" * 1000).hexdigest()
    out = verified_assembly(parts, sha, tmp_path / "model.bin", "reinstall")
    assert out.read_bytes() == b"abc" * 1000 + b"def" * 1000
    first_mtime = out.stat().st_mtime_ns
    assert verified_assembly(parts, sha, tmp_path / "model.bin", "reinstall") == out
    assert out.stat().st_mtime_ns == first_mtime  # not rebuilt


@pytest.mark.parametrize("damage", ["truncated", "sidecar"])
def test_a_partly_written_or_unrecorded_assembly_is_detected_and_redone(tmp_path, damage):
    """A cached model cut short (a disk filled up, an older copy killed mid-write) or whose
    record is garbage is assembled again from the parts, not loaded."""
    import os
    import time

    data = b"abc" * 1000 + b"def" * 1000
    parts = make_parts(tmp_path, [b"abc" * 1000, b"def" * 1000])
    sha = hashlib.sha256(data).hexdigest()
    out = verified_assembly(parts, sha, tmp_path / "model.bin", "reinstall")
    if damage == "truncated":
        out.write_bytes(data[:1000])
    else:
        out.with_suffix(".bin.json").write_text("{not json")
    stale = tmp_path / "model.binab12cd.tmp"  # what a killed assembly leaves behind
    stale.write_bytes(data[:10])
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    assert verified_assembly(parts, sha, tmp_path / "model.bin", "reinstall").read_bytes() == data
    assert not stale.exists()


def test_corrupt_part_names_the_parts_and_the_fix(tmp_path):
    parts = make_parts(tmp_path, [b"abc", b"def"])
    sha = hashlib.sha256(b"abcdef").hexdigest()
    parts[1].write_bytes(b"deX")
    with pytest.raises(ModelFileError) as err:
        verified_assembly(parts, sha, tmp_path / "model.bin", "run pip install --force-reinstall x")
    message = str(err.value)
    assert str(parts[1]) in message and "expected " + sha in message and "pip install" in message
    assert not (tmp_path / "model.bin").exists()


def test_missing_part_is_named(tmp_path):
    parts = make_parts(tmp_path, [b"abc"])
    parts.append(tmp_path / "gone.bin")
    with pytest.raises(ModelFileError, match="gone.bin: model part is missing"):
        verified_assembly(parts, "0" * 64, tmp_path / "model.bin", "reinstall")


def test_llm_path_that_is_not_gguf_is_refused(tmp_path):
    from rag.llm import resolve_gguf

    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(ModelFileError, match="model.gguf: not a GGUF file"):
        resolve_gguf(str(fake))
    with pytest.raises(ModelFileError, match="not found"):
        resolve_gguf(str(tmp_path / "missing.gguf"))


def test_embedding_folder_without_weights_is_refused(tmp_path):
    from rag.models.embedding import resolve_embedding_model

    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelFileError, match="no model weights"):
        resolve_embedding_model(str(tmp_path))


def test_packaged_models_resolve_to_verified_files():
    from rag.models.embedding import resolve_embedding_model
    from rag.models.gguf import packaged_gguf

    gguf = packaged_gguf()
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert resolve_embedding_model("packaged").endswith("model")


def _built(final, text):
    work = staging_folder(final)
    (work / "model.onnx").write_text(text)
    return work


def _finished(final):
    """A cache check that accepts a folder holding a model file."""
    return lambda: final if (final / "model.onnx").is_file() else None


def test_a_built_cache_folder_is_renamed_into_place_replacing_an_unfinished_one(tmp_path):
    final = tmp_path / "onnx-x"
    final.mkdir()
    (final / "leftover").write_text("a killed run's half-copy")
    work = _built(final, "ours")
    assert move_into_place(work, final, _finished(final)) is None
    assert (final / "model.onnx").read_text() == "ours"
    assert not (final / "leftover").exists() and not work.exists()


def test_when_another_process_finished_first_its_copy_is_used_and_ours_dropped(tmp_path):
    final = tmp_path / "onnx-x"
    final.mkdir()
    (final / "model.onnx").write_text("theirs")
    work = _built(final, "ours")
    assert move_into_place(work, final, _finished(final)) == final
    assert (final / "model.onnx").read_text() == "theirs" and not work.exists()


def test_a_folder_in_the_way_that_is_not_a_finished_copy_says_to_delete_it(tmp_path):
    final = tmp_path / "onnx-x"
    work = _built(final, "ours")
    seen = iter([final, None])  # finished when first asked, gone bad by the time of the rename

    def flaky():
        return next(seen)

    final.mkdir()
    (final / "other").write_text("x")
    with pytest.raises(ModelFileError, match="delete it"):
        move_into_place(work, final, flaky)
    assert not work.exists()
