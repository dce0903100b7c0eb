"""One contrastive fine-tune with sentence-transformers' SentenceTransformerTrainer.

MultipleNegativesRankingLoss (or its cached form, a large batch in little memory) over (anchor, positive,
negatives) rows, batches without duplicate texts (a statute relevant to two queries in one batch would be a
false in-batch negative), the model's query prompt on the anchors, a fixed seed, fp32 on a CPU and bf16
autocast on CUDA, checkpoints for --resume, and early stopping on validation rows when there are any.
LoRA (peft) trains low-rank adapters and merges them into the weights before saving, so the saved folder
loads like any sentence-transformers model.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from ..dense import gpu
from .options import TrainConfig
from .pairs import Pairs


def train_fitting(load_model: Callable[[], object], train_rows: Pairs, val_rows: Pairs | None, work: Path,
                  cfg: TrainConfig, query_prompt: str, resume: bool = False) -> tuple[object, dict]:
    """`train` a model from `load_model`; after a CUDA out-of-memory error, again on a fresh model with half the
    batch (as the encoder halves its batches) until one fits. Returns the model and the log, with the batch used."""
    while True:
        model = load_model()
        try:
            return model, {**train(model, train_rows, val_rows, work, cfg, query_prompt, resume),
                           "batch_size": cfg.batch_size}
        except RuntimeError as e:  # torch.cuda.OutOfMemoryError is one, as are cuBLAS's
            if cfg.batch_size < 4 or not gpu.is_oom(e):
                raise
        del model
        gpu.free_cuda_memory()  # outside the except block, whose traceback held the batch's tensors
        shutil.rmtree(work, ignore_errors=True)  # checkpoints of the larger batch cannot be resumed
        cfg = replace(cfg, batch_size=cfg.batch_size // 2, mini_batch_size=max(1, cfg.mini_batch_size // 2))
        resume = False
        print(f"[finetune] CUDA out of memory: training again from the base model with batches of {cfg.batch_size} "
              "(a lower --train-batch-size, or --loss cached, avoids this)", file=sys.stderr, flush=True)


def train(model, train_rows: Pairs, val_rows: Pairs | None, work: Path, cfg: TrainConfig, query_prompt: str,
          resume: bool = False) -> dict:
    """Fine-tune the SentenceTransformer `model` in place; checkpoints in `work`. Returns the training log."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import EarlyStoppingCallback

    if len(train_rows) < cfg.batch_size:
        raise ValueError(f"{len(train_rows)} training pairs are fewer than one batch ({cfg.batch_size}); "
                         "lower --train-batch-size or give more training queries")
    if cfg.lora:
        _add_lora(model, cfg)
    device = str(model.device)
    steps_per_epoch = max(1, len(train_rows) // cfg.batch_size)
    evaluate = val_rows is not None and len(val_rows) > 0
    every = max(1, steps_per_epoch // cfg.evaluations_per_epoch)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, warmup_steps=cfg.warmup_ratio,
        weight_decay=cfg.weight_decay, seed=cfg.seed, data_seed=cfg.seed,
        bf16=gpu.is_cuda(device) and gpu.auto_dtype(device) == "bfloat16", use_cpu=not gpu.is_cuda(device),
        batch_sampler=BatchSamplers.NO_DUPLICATES, prompts={"anchor": query_prompt} if query_prompt else None,
        eval_strategy="steps" if evaluate else "no", eval_steps=every, save_strategy="steps", save_steps=every,
        save_total_limit=2, load_best_model_at_end=evaluate, metric_for_best_model="eval_loss",
        greater_is_better=False, logging_steps=max(1, every // 2), logging_first_step=True, report_to="none",
        disable_tqdm=True, dataloader_num_workers=0)
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_dict(train_rows.columns()),
        eval_dataset=Dataset.from_dict(val_rows.columns()) if evaluate else None, loss=_loss(model, cfg),
        callbacks=[EarlyStoppingCallback(cfg.patience)] if evaluate else [])
    trainer.remove_callback(PrinterCallback)  # it prints each log dict on stdout; _LossLine says it on stderr
    trainer.add_callback(_LossLine())
    has_checkpoint = resume and any(work.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if has_checkpoint else None)
    if cfg.lora:
        _merge_lora(model)
    history = trainer.state.log_history
    return {"steps": trainer.state.global_step, "train_loss": result.training_loss,
            "best_eval_loss": trainer.state.best_metric, "resumed": has_checkpoint,
            "eval_loss": [h["eval_loss"] for h in history if "eval_loss" in h]}


def _loss(model, cfg: TrainConfig):
    from sentence_transformers.sentence_transformer import losses

    if cfg.loss == "cached":
        return losses.CachedMultipleNegativesRankingLoss(model, scale=cfg.scale, mini_batch_size=cfg.mini_batch_size)
    return losses.MultipleNegativesRankingLoss(model, scale=cfg.scale)


def _add_lora(model, cfg: TrainConfig) -> None:
    """Wrap the transformer in peft LoRA adapters on every linear layer (the rest frozen)."""
    from peft import LoraConfig, TaskType, get_peft_model

    module = model[0]
    config = LoraConfig(task_type=TaskType.FEATURE_EXTRACTION, r=cfg.lora_rank, lora_alpha=cfg.lora_alpha,
                        lora_dropout=cfg.lora_dropout, target_modules="all-linear")
    module.model = get_peft_model(module.model, config)


def _merge_lora(model) -> None:
    """Fold the adapters into the weights, so the saved model needs no peft to load."""
    module = model[0]
    module.model = module.model.merge_and_unload()


class _LossLine(TrainerCallback):
    """Prints one line per logging step: step, loss, learning rate (and validation loss)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            parts = [f"{k} {v:.4g}" for k, v in logs.items() if k in ("loss", "eval_loss", "learning_rate")]
            if parts:
                print(f"[finetune] step {state.global_step}/{state.max_steps}: {', '.join(parts)}", file=sys.stderr,
                      flush=True)
