"""Encoding on several devices of one machine (`--devices cuda:0,cuda:1`, `all`, `cpu,cpu`): one process per device.

Each worker process (spawned, as sentence-transformers' own multi-process pool does) loads the same Encoder on its
device and encodes whole blocks of the one-process plan (shards.plan_blocks), so token budgets, longest-first
batches, out-of-memory replanning, prompts and precision stay what they are on one device, and each text meets
the same batch it would meet in one process. sentence-transformers' pool is not used itself: its workers run
its own `encode`, not this project's planned batches. The vectors come back in input order.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace

import numpy as np

from . import gpu
from .encoders import DEFAULT_MODEL, Encoder, _progress_bar
from .shards import plan_blocks

_worker = None  # in a worker process: its Encoder, or the error that stopped it loading


def parse_devices(value: str) -> list[str]:
    """The devices of `--devices`: a comma-separated list (cpu, cuda, cuda:N; repeats allowed) or `all` (every
    CUDA device torch sees); a device this process cannot use is a one-line ValueError."""
    if value.strip() == "all":
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ValueError("--devices all: torch sees no CUDA device; name CPU workers instead, e.g. cpu,cpu")
        return [f"cuda:{i}" for i in range(count)]
    devices = [d.strip() for d in value.split(",") if d.strip()]
    if not devices:
        raise ValueError(f"--devices {value!r}: expected devices separated by commas (cpu,cpu or cuda:0,cuda:1) "
                         "or all")
    for d in devices:
        if d != "cpu" and not gpu.is_cuda(d):
            raise ValueError(f"--devices: unknown device {d!r} (cpu, cuda or cuda:N)")
        gpu.check_device(d)
    return devices


def _load(config, devices, threads: int) -> None:
    """Worker start: take a device from the queue and load the encoder there (a failure is kept, and raised by
    the worker's first block, so the build stops with its message)."""
    global _worker
    device = devices.get()
    try:
        if device == "cpu":
            import torch

            torch.set_num_threads(threads)
        _worker = Encoder(replace(config, device=device))
    except Exception as e:  # noqa: BLE001 - reported by the block, named by its device
        _worker = ValueError(f"worker on {device}: {e}")


def _encode(texts: list[str]) -> np.ndarray:
    """Worker task: one block's document vectors."""
    if isinstance(_worker, Exception):
        raise _worker
    return _worker.encode_documents(texts, progress=False)


class DevicePool:
    """A process per device, started on the first encoding, each with its own copy of the model."""

    def __init__(self, encoder, devices: Sequence[str]):
        self.encoder, self.devices = encoder, list(devices)
        self._pool: ProcessPoolExecutor | None = None

    def _start(self) -> ProcessPoolExecutor:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        for d in self.devices:
            queue.put(d)
        cpus = self.devices.count("cpu")
        threads = max(1, (os.cpu_count() or 1) // cpus) if cpus else 1
        self._pool = ProcessPoolExecutor(len(self.devices), mp_context=ctx, initializer=_load,
                                         initargs=(worker_config(self.encoder), queue, threads))
        weakref.finalize(self, self._pool.shutdown, cancel_futures=True)
        return self._pool

    def finish(self) -> None:
        """Stop the worker processes."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def encode(self, texts: Sequence[str], progress: bool = True) -> np.ndarray:
        """Unit float32 document vectors of `texts` in input order, the blocks spread over the devices."""
        texts = list(texts)
        out = np.zeros((len(texts), self.encoder.dim), dtype=np.float32)
        if not texts:
            return out
        pool = self._pool or self._start()
        blocks = plan_blocks(self.encoder, texts, self.encoder.document_prompt, len(self.devices))
        futures = [pool.submit(_encode, [texts[i] for i in block]) for block in blocks]
        bar = _progress_bar(len(texts), progress)
        try:
            for block, future in zip(blocks, futures):
                out[block] = future.result()
                bar.update(len(block))
        except BrokenProcessPool:
            raise ValueError(f"an encoding worker on {', '.join(self.devices)} died (out of memory, killed?); "
                             "nothing was written") from None
        finally:
            bar.close()
        return out


def worker_config(encoder):
    """The encoder's settings for a worker: its model by absolute path (the bundled one: found again there)."""
    return replace(encoder.config, model=None if encoder.model_name == DEFAULT_MODEL else encoder.model_path)


def attach(encoder, devices: Sequence[str]) -> DevicePool:
    """Route `encoder`'s document encoding through a pool over `devices` (queries stay in this process)."""
    pool = DevicePool(encoder, devices)
    encoder.encode_documents = pool.encode
    return pool
