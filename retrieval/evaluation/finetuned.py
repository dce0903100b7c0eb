"""A model made by `retrieval finetune` in `bench`: its base model, and the queries it must not be scored on.

The model folder's finetune.json names the base model and the query ids the saved (final) model trained on,
its early-stopping validation queries included. Scoring those queries would report memorised answers, so
`bench` leaves them out and says how many (docs/finetune.md "Benchmarking a fine-tuned model"); when no query
is left it stops with one line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..corpus import CorpusError
from ..dense.encoders import model_folder
from .datasets import RetrievalData, subset

RESULT = "finetune.json"  # the report `finetune` writes into the model folder (finetune/protocol.py)


@dataclass(frozen=True)
class Lineage:
    """What a fine-tuned model's finetune.json says bench needs: the file, the base model, the queries seen."""

    path: Path
    base_model: str
    base_weights_sha256: str | None
    seen: frozenset[str]  # query ids the saved model trained or validated on


def read_lineage(model: str | None) -> Lineage | None:
    """The lineage of a fine-tuned model folder; None for any other model (the bundled one, a Hub id)."""
    folder = model_folder(model) if model else None
    path = folder / RESULT if folder else None
    if path is None or not path.is_file():
        return None
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        final = report["final"]
        seen = frozenset(map(str, [*final["trained_queries"], *final.get("validation_queries", [])]))
        base = report["base_model"]
        return Lineage(path, str(base["model"]), base.get("weights_sha256"), seen)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CorpusError(f"{path}: unreadable ({type(e).__name__}: {e}); cannot tell which queries the model "
                          "trained on") from None


def held_out(data: RetrievalData, lineage: Lineage) -> tuple[RetrievalData, int]:
    """The data less the queries the model trained on, and how many were left out; none left is one line."""
    seen = [q for q in data.queries if q in lineage.seen]
    if not seen:
        return data, 0
    if len(seen) == len(data.queries):
        raise CorpusError(f"{lineage.path}: the model trained on all {len(seen)} queries of {data.name}; bench it "
                          "on queries it never saw (a --dataset without them), or quote `finetune --folds` "
                          "out-of-fold figures")
    return subset(data, [q for q in data.queries if q not in lineage.seen]), len(seen)
