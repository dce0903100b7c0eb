"""The fine-tune's hyperparameters, importable without the training stack (the CLI builds its options from them)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

LOSSES = ("mnrl", "cached")


@dataclass(frozen=True)
class TrainConfig:
    """Every hyperparameter of one training run (recorded in finetune.json)."""

    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    loss: str = "mnrl"  # "mnrl" or "cached" (CachedMultipleNegativesRankingLoss)
    mini_batch_size: int = 8  # cached loss only
    scale: float = 20.0  # similarity scale of the loss
    hard_negatives: int = 0  # mined per row by the base model; 0: in-batch negatives only
    validation: float = 0.1  # share of the training queries held out for early stopping
    patience: int = 2  # evaluations without a lower validation loss before stopping
    evaluations_per_epoch: int = 2
    lora: bool = False
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    seed: int = 0

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r} (choose from {', '.join(LOSSES)})")
        if self.batch_size < 2:
            raise ValueError(f"--train-batch-size must be >= 2 (in-batch negatives), got {self.batch_size}")
        if not 0.0 <= self.validation < 1.0:
            raise ValueError(f"--validation must be in [0, 1), got {self.validation}")
        if self.epochs <= 0 or self.learning_rate <= 0:
            raise ValueError("--epochs and --learning-rate must be > 0")

    def to_dict(self) -> dict:
        """JSON form."""
        return asdict(self)
