"""Fine-tune the dense leg's encoder on judged queries, scored out of fold (docs/finetune.md)."""

from .protocol import FinetuneConfig, run_finetune
from .train import TrainConfig

__all__ = ["FinetuneConfig", "TrainConfig", "run_finetune"]
