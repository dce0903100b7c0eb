"""Fine-tune the dense leg's encoder on judged queries, scored out of fold (docs/finetune.md)."""

from .options import TrainConfig

__all__ = ["FinetuneConfig", "TrainConfig", "run_finetune"]


def __getattr__(name: str):
    """FinetuneConfig and run_finetune on first use: the training stack (torch, transformers) loads only then."""
    if name in ("FinetuneConfig", "run_finetune"):
        from . import protocol

        return getattr(protocol, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
