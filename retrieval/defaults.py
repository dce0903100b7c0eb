"""The fusion an untuned index uses, from a declared prior on which leg is the stronger one for the model's family.

A score fusion that down-weights the weak leg never falls far below the strong one (docs/languages.md): with the
bundled MiniLM, BM25 leads and the dense leg is weighted 0.2 (measured here); for a family whose published scores
put its dense leg far ahead of BM25, the mirror. Priors are declared, not tuned on the data `bench` reports;
a settings file from `tune` replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .settings import FusionConfig

QWEN3, MINILM, UNKNOWN = "qwen3-embedding", "all-minilm-l6-v2", "unknown"
DEFAULT_FUSION = FusionConfig("rsf", weights={"dense": 0.2, "bm25": 1.0})
"""What `build` stores for the bundled MiniLM (and models without a prior) when no settings file is given: min-max
score fusion with the dense leg at a fifth of BM25's weight, each leg's whole list (chosen leaving one data set out:
scripts/default_fusion.py, docs/languages.md)."""
DENSE_LEADS = FusionConfig(DEFAULT_FUSION.method, weights={"dense": DEFAULT_FUSION.weights["bm25"],
                                                          "bm25": DEFAULT_FUSION.weights["dense"]})  # its mirror
_MEASURED = ("measured with the bundled all-MiniLM-L6-v2 on AILA, AILA without titles and a STARD subset, "
             "leave one data set out (scripts/default_fusion.py); tune replaces it")
PRIORS = {  # family -> (fusion, why); the part before ':' is what `build` says
    QWEN3: (DENSE_LEADS, "dense leads, a prior from published AILAStatutes nDCG@10, not measured here: Qwen's MTEB "
                         "submission for Qwen3-Embedding-0.6B 0.790, a user's run 0.745, BM25 0.216; tune replaces it"),
    MINILM: (DEFAULT_FUSION, f"bm25 leads, measured: {_MEASURED}"),
    UNKNOWN: (DEFAULT_FUSION, f"bm25 leads, no prior for this model: the preset {_MEASURED}"),
}


@dataclass(frozen=True)
class Prior:
    """The default fusion of an untuned index, the model family it follows from and why."""

    family: str
    fusion: FusionConfig
    reason: str

    def describe(self) -> str:
        """'rsf dense 1.0 / bm25 0.2 (qwen3-embedding: dense leads, a prior ...)' for `build`'s line."""
        w = self.fusion.weights
        return (f"{self.fusion.method} dense {w['dense']:.1f} / bm25 {w['bm25']:.1f} "
                f"({self.family}: {self.reason.split(':', 1)[0]})")

    def to_dict(self) -> dict:
        """The manifest's `default_fusion` entry."""
        return {"family": self.family, "fusion": self.fusion.to_dict(), "reason": self.reason}


def model_family(model: str | None) -> str:
    """QWEN3 for a Qwen3-Embedding model (its name, or `model_type: qwen3` in its folder's config.json), MINILM
    for the bundled all-MiniLM-L6-v2 (None or its name), else UNKNOWN."""
    import json

    from .dense.encoders import DEFAULT_MODEL, model_folder, resolve_model

    name = str(model or DEFAULT_MODEL).lower()
    if QWEN3 in name:
        return QWEN3
    if MINILM in name:
        return MINILM
    folder = model_folder(resolve_model(model))
    try:
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8")) if folder else {}
    except (OSError, ValueError):
        config = {}
    return QWEN3 if isinstance(config, dict) and config.get("model_type") == "qwen3" else UNKNOWN


def fusion_prior(model: str | None) -> Prior:
    """The default fusion for an index of `model` (None: the bundled MiniLM) nobody tuned."""
    family = model_family(model)
    fusion, reason = PRIORS[family]
    return Prior(family, fusion, reason)
