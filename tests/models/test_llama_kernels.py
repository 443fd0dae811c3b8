"""llama.cpp's AVX-512 kernels are used only where the CPU has them and the build matches
(rag/models/llama_kernels.py), and a process says which it chose."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rag.models.llama_kernels import REQUIRED_FLAGS, choose, sha256_file

REPO = Path(__file__).resolve().parents[2]
ALL_FLAGS = set(REQUIRED_FLAGS) | {"avx2", "fma", "f16c"}


@pytest.fixture
def build(tmp_path):
    """An AVX-512 build folder stamped for version 1.0 and the base library beside it."""
    library_dir = tmp_path / "site" / "lib"
    library_dir.mkdir(parents=True)
    (library_dir / "libggml-base.so").write_bytes(b"the installed base library")
    built = tmp_path / "kernels"
    built.mkdir()
    (built / "libggml-cpu.so").write_bytes(b"the avx-512 cpu library")
    (built / "build.json").write_text(json.dumps(
        {"version": "1.0", "base_sha256": sha256_file(library_dir / "libggml-base.so")}))
    return built, library_dir


def decide(build, **overrides):
    built, library_dir = build
    arguments = {"flags": ALL_FLAGS, "version": "1.0", "library_dir": library_dir, "built": built}
    return choose(overrides.pop("setting", "auto"), **{**arguments, **overrides})


def test_avx512_where_the_cpu_has_every_feature_and_the_build_matches(build):
    choice = decide(build)
    assert choice.kernels == "avx512"
    assert choice.library == build[0] / "libggml-cpu.so"


def test_a_missing_feature_keeps_avx2_and_is_named(build):
    choice = decide(build, flags=ALL_FLAGS - {"avx512_bf16"})
    assert (choice.kernels, choice.library) == ("avx2", None)
    assert "avx512_bf16" in choice.reason


def test_a_build_for_another_version_is_not_loaded(build):
    choice = decide(build, version="1.1")
    assert choice.kernels == "avx2" and "1.0" in choice.reason and "1.1" in choice.reason


def test_a_build_against_another_base_library_is_not_loaded(build):
    (build[1] / "libggml-base.so").write_bytes(b"a reinstalled base library")
    assert decide(build).kernels == "avx2"


def test_no_build_keeps_avx2_and_says_how_to_build(build, tmp_path):
    choice = decide(build, built=tmp_path / "nothing")
    assert choice.kernels == "avx2" and "make install" in choice.reason


def test_the_setting_can_pin_avx2_and_refuses_other_values(build):
    assert decide(build, setting="avx2").kernels == "avx2"
    with pytest.raises(ValueError, match="llm_cpu_kernels"):
        decide(build, setting="avx512")


ANSWER = """
import json, sys
from rag.llm import LlamaCppChat
from rag.models.llama_kernels import loaded
chat = LlamaCppChat(context_window=512, threads=2, kernels=sys.argv[1])
text = chat.chat([{"role": "user", "content": "Say the word tea."}], max_tokens=8)
import llama_cpp
maps = open("/proc/self/maps").read()
print(json.dumps({"kernels": loaded().kernels, "text": text,
                  "info": llama_cpp.llama_print_system_info().decode(),
                  "libs": sorted({l.split()[-1] for l in maps.splitlines() if "ggml-cpu" in l})}))
"""


def answer_with(kernels: str) -> dict:
    done = subprocess.run([sys.executable, "-c", ANSWER, kernels], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_packaged_model_answers_on_the_kernels_chosen_for_this_cpu():
    expected = choose("auto")
    if expected.kernels != "avx512":
        pytest.skip(f"this machine runs AVX2 kernels: {expected.reason}")
    fast = answer_with("auto")
    assert fast["kernels"] == "avx512" and "AVX512 = 1" in fast["info"]
    assert fast["libs"] and all("rag-llama-kernels" in lib for lib in fast["libs"])
    assert fast["text"].strip()
    plain = answer_with("avx2")
    assert plain["kernels"] == "avx2" and "AVX512 = 1" not in plain["info"]
    assert plain["libs"] and not any("rag-llama-kernels" in lib for lib in plain["libs"])


def test_rag_config_says_which_kernels_answers_use(tmp_path):
    done = subprocess.run([sys.executable, "-m", "rag", "config", "--json", "--index",
                           str(tmp_path / "idx"), "--set", "llm_cpu_kernels=avx2"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    derived = json.loads(done.stdout)["derived"]
    assert derived["llm_cpu_kernels_effective"] == "avx2 (llm_cpu_kernels = avx2)"


FINGERPRINTS = """
import json
from eval.answer_cache import answer_fingerprint
from rag.llm import LlamaCppChat
print(json.dumps({k: answer_fingerprint(LlamaCppChat(kernels=k)) for k in ("auto", "avx2")}))
"""


def test_cached_answers_are_kept_apart_by_kernels():
    """AVX-512 kernels round differently, so an eval never serves their answers as AVX2 ones;
    AVX2 keys stay what they were before the kernels were a choice."""
    done = subprocess.run([sys.executable, "-c", FINGERPRINTS], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    keys = json.loads(done.stdout.strip().splitlines()[-1])
    assert "kernels" not in keys["avx2"]
    if choose("auto").kernels == "avx512":
        assert keys["auto"] == keys["avx2"] + "|kernels=avx512"
    else:
        assert keys["auto"] == keys["avx2"]
