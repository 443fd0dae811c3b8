"""int8 dynamic quantisation of the packaged MiniLM: per-channel scales keep its vectors close
to float32 (what the AVX2 throughput choice rests on), where one scale per tensor does not."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from rag.models.variants import QuantizedEmbedder
from tests.conftest import SHARED_DATA

pytestmark = pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="../shared/data is absent")


@pytest.fixture(scope="module")
def passages() -> list[str]:
    texts = []
    for path in sorted(glob.glob(str(SHARED_DATA / "qa" / "paul_graham" / "essays" / "*")))[:8]:
        text = open(path, encoding="utf-8", errors="ignore").read()
        texts += [text[i:i + 1100] for i in range(0, min(len(text), 5500), 1100)]
    return texts


def mean_cosine(embedder, reference: np.ndarray, texts: list[str]) -> float:
    return float((embedder.encode(texts) * reference).sum(axis=1).mean())


def test_per_channel_int8_stays_closer_to_float32_than_per_tensor_int8(embedder, passages):
    reference = embedder.encode(passages)
    per_tensor = mean_cosine(QuantizedEmbedder(embedder.path), reference, passages)
    per_channel = QuantizedEmbedder(embedder.path, per_channel=True)
    assert per_channel.fingerprint != QuantizedEmbedder(embedder.path).fingerprint
    close = mean_cosine(per_channel, reference, passages)
    print(f"mean cosine to float32: per tensor {per_tensor:.4f}, per channel {close:.4f}")
    assert close > 0.97 and close > per_tensor + 0.02


def test_layers_kept_in_float32_are_not_quantised(embedder):
    import torch

    kept = QuantizedEmbedder(embedder.path, per_channel=True, keep_float=(r"\.intermediate\.dense$",))
    linear = {name: type(module) for name, module in kept.model.named_modules()
              if "layer.0." in name and name.endswith("dense")}
    assert linear["0.model.encoder.layer.0.intermediate.dense"] is torch.nn.Linear
    assert linear["0.model.encoder.layer.0.output.dense"] is not torch.nn.Linear
