"""rag.models.cpu: the one reader of /proc/cpuinfo behind the bfloat16 and AVX-512 choices."""

from __future__ import annotations

import pytest

from rag.models import cpu
from rag.models.embedder import choose_dtype

AVX2_ONLY = """processor\t: 0
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma f16c

processor\t: 1
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse2 avx avx2 fma f16c
"""
BF16 = AVX2_ONLY.replace("avx2 fma", "avx2 fma avx512f avx512_bf16").replace("AMD EPYC 7B12", "Intel(R) Xeon(R)")


@pytest.fixture
def cpuinfo(tmp_path, monkeypatch):
    def write(text: str | None):
        path = tmp_path / "cpuinfo"
        if text is not None:
            path.write_text(text)
        monkeypatch.setattr(cpu, "CPUINFO", path)
        cpu._cpuinfo.cache_clear()

    yield write
    cpu._cpuinfo.cache_clear()


def test_an_avx2_only_cpu_embeds_in_float32(cpuinfo):
    cpuinfo(AVX2_ONLY)
    assert cpu.cpu_model() == "AMD EPYC 7B12"
    assert {"avx2", "fma"} <= cpu.cpu_flags() and not cpu.cpu_has_bf16()
    assert choose_dtype("auto", "cpu") == "float32"


def test_a_cpu_with_avx512_bf16_embeds_in_bfloat16(cpuinfo):
    cpuinfo(BF16)
    assert cpu.cpu_model() == "Intel(R) Xeon(R)" and cpu.cpu_has_bf16()
    assert choose_dtype("auto", "cpu") == "bfloat16"
    assert choose_dtype("float32", "cpu") == "float32"  # asked for: kept


def test_no_cpuinfo_means_the_portable_path(cpuinfo):
    cpuinfo(None)
    assert cpu.cpu_flags() == frozenset() and not cpu.cpu_has_bf16()
    assert cpu.cpu_model()  # still names something (the platform's machine)
