"""What the GPU in use can do: device checks, compute capability, precision and attention choices,
out-of-memory errors, and whether faiss's GPU build can run a search here (tried in a child process).

A faiss-gpu wheel without kernels for this GPU (docs/gpu.md) aborts the whole process at its first
search, so the first search is tried in a child process before faiss-gpu is chosen.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import subprocess
import sys

log = logging.getLogger(__name__)

BF16_MIN_CAPABILITY = (8, 0)  # Ampere: native bf16 (earlier cards only emulate it, slowly)
FLASH_ATTN_MIN_CAPABILITY = (8, 0)  # flash-attn 2 runs on Ampere, Ada, Hopper and later
PROBE_TIMEOUT = 300  # seconds; a GPU that JIT-compiles faiss's PTX (no native kernels) needs a while
OOM_MARKERS = ("out of memory", "CUBLAS_STATUS_ALLOC_FAILED", "CUDNN_STATUS_ALLOC_FAILED")
_PROBE = """
import sys, numpy as np, faiss
dev = int(sys.argv[1])
x = np.random.default_rng(0).standard_normal((512, 32)).astype("float32")
res = faiss.StandardGpuResources()
flat = faiss.index_cpu_to_gpu(res, dev, faiss.IndexFlatIP(32))
flat.add(x)
ivf = faiss.index_factory(32, "IVF4,Flat", faiss.METRIC_INNER_PRODUCT)
ivf.train(x)
ivf = faiss.index_cpu_to_gpu(res, dev, ivf)
ivf.add(x)
for index in (flat, ivf):
    _, rows = index.search(x[:4], 3)
    assert (rows[:, 0] == np.arange(4)).all(), rows
print("ok")
"""


def is_cuda(device: str | None) -> bool:
    """Whether `device` names a CUDA device ('cuda', 'cuda:1')."""
    return bool(device) and device.split(":")[0] == "cuda"


def device_index(device: str) -> int:
    """The CUDA ordinal of 'cuda' (torch's current device) or 'cuda:N' (N)."""
    _, _, number = device.partition(":")
    if number:
        return int(number)
    import torch

    return torch.cuda.current_device()


def check_device(device: str) -> str:
    """`device` when this process can use it; a one-line ValueError when a CUDA device cannot be honoured."""
    if not is_cuda(device):
        return device
    import torch

    _, _, number = device.partition(":")
    if number and not number.isdigit():
        raise ValueError(f"--device {device}: expected cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch {torch.__version__} sees no CUDA device "
                         f"(built for CUDA {torch.version.cuda or 'none: a CPU build'}); use --device cpu")
    count = torch.cuda.device_count()
    if number and int(number) >= count:
        raise ValueError(f"--device {device}: torch sees {count} CUDA device(s), cuda:0..cuda:{count - 1}")
    return device


def capability(device: str) -> tuple[int, int]:
    """Compute capability (major, minor) of the CUDA device `device`; (0, 0) for a CPU."""
    if not is_cuda(device):
        return (0, 0)
    import torch

    return tuple(torch.cuda.get_device_capability(device_index(device)))


def describe(device: str) -> str:
    """'cpu', or 'cuda:0 (NVIDIA H200, compute capability 9.0)'."""
    if not is_cuda(device):
        return device
    import torch

    index = device_index(device)
    major, minor = capability(device)
    return f"cuda:{index} ({torch.cuda.get_device_name(index)}, compute capability {major}.{minor})"


def auto_dtype(device: str) -> str:
    """bfloat16 on a CUDA device of compute capability >= 8.0, float16 on older CUDA devices, float32 on a CPU."""
    if not is_cuda(device):
        return "float32"
    return "bfloat16" if capability(device) >= BF16_MIN_CAPABILITY else "float16"


def flash_attention_problem(device: str, dtype: str) -> str | None:
    """Why flash_attention_2 cannot run on `device` in `dtype`, or None when it can."""
    if importlib.util.find_spec("flash_attn") is None:
        return ("attention flash_attention_2 needs the flash_attn package, which is not installed "
                "(pip install flash-attn --no-build-isolation); use sdpa instead")
    if not is_cuda(device) or dtype not in ("bfloat16", "float16"):
        return f"attention flash_attention_2 runs on CUDA in bfloat16 or float16, not {device} {dtype}"
    if capability(device) < FLASH_ATTN_MIN_CAPABILITY:
        major, minor = capability(device)
        return f"attention flash_attention_2 needs compute capability 8.0 or more; {device} has {major}.{minor}"
    return None


def is_oom(error: BaseException) -> bool:
    """A CUDA out-of-memory error, also as cuBLAS or flash-attn raise it (a RuntimeError with the reason in text)."""
    import torch

    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and any(m in str(error) for m in OOM_MARKERS)


def free_cuda_memory() -> None:
    """Return cached CUDA blocks after an out-of-memory error (call outside the `except` block, whose
    traceback still holds the failed batch's tensors)."""
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def faiss_gpu_count() -> int:
    """GPUs that faiss can use; 0 for CPU builds (no GPU call is made)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


@functools.lru_cache(maxsize=None)
def faiss_gpu_problem(device: int = 0) -> str | None:
    """Why faiss-gpu cannot search on GPU `device`, or None when a tiny flat and IVF search ran there
    (in a child process, once per process and device): a wheel without this GPU's kernels aborts its process.
    A failure is logged as a warning."""
    try:
        run = subprocess.run([sys.executable, "-c", _PROBE, str(device)], capture_output=True, text=True,
                             timeout=PROBE_TIMEOUT, check=False, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        run = subprocess.CompletedProcess([], 124, "", f"no answer in {PROBE_TIMEOUT} s")
    if run.returncode == 0 and run.stdout.strip().endswith("ok"):
        return None
    lines = (run.stderr or run.stdout).strip().splitlines()
    problem = f"a tiny faiss-gpu search failed (exit {run.returncode}): {lines[-1] if lines else 'no output'}"
    log.warning("not using faiss-gpu on cuda:%d: %s (docs/gpu.md lists wheels with kernels for each GPU)",
                device, problem)
    return problem


def faiss_gpu_usable(device: int = 0) -> bool:
    """Whether faiss-gpu may be chosen for GPU `device`: faiss sees it and a test search there ran (warned once when not)."""
    return faiss_gpu_count() > device and faiss_gpu_problem(device) is None
