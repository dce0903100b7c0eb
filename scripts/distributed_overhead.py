"""What distributed encoding costs on one machine: N synthetic passages encoded by one process, by a process per
device (--devices cpu,cpu) and by local Ray actors (--ray), with the bundled MiniLM on the CPU.

    PYTHONPATH=. python scripts/distributed_overhead.py [-n 2000] [--workers 2] [--words 32]

Prints one JSON object: seconds per way (Ray's including its start and the actors' model loads, the pool's its
processes' start and loads), texts per second, the largest difference from the one-process vectors, the machine.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from retrieval.dense import devices, ray_encode
from retrieval.dense.encoders import Encoder, EncoderConfig
from retrieval.perf.measure import machine
from retrieval.perf.synthetic import documents


def main() -> None:
    """Encode the same passages three ways and print the times."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=2000, help="synthetic passages (default 2000)")
    p.add_argument("--workers", type=int, default=2, help="CPU processes / Ray actors (default 2)")
    p.add_argument("--words", type=int, help="each passage cut to its first N words (default: whole, 50-300 words)")
    args = p.parse_args()
    texts = [" ".join(d.text.split()[:args.words]) if args.words else d.text for d in documents(args.n)]
    encoder = Encoder(EncoderConfig(device="cpu"))
    result = {"passages": args.n, "workers": args.workers, "words": args.words, "model": encoder.describe(),
              "machine": machine()}
    t = time.perf_counter()
    one = encoder.encode_documents(texts, progress=False)
    result["one_process_s"] = time.perf_counter() - t
    ways = {"devices": lambda: devices.attach(encoder, ["cpu"] * args.workers)}
    with tempfile.TemporaryDirectory(prefix="distributed-overhead-") as shards:
        ways["ray"] = lambda: ray_encode.attach(encoder, None, shards)
        for name, attach in ways.items():
            t = time.perf_counter()
            if name == "ray":
                import ray

                ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
            routed = attach()
            vectors = encoder.encode_documents(texts, progress=False)
            result[f"{name}_s"] = time.perf_counter() - t
            result[f"{name}_max_abs_diff"] = float(np.abs(vectors - one).max())
            routed.finish()
            encoder.__dict__.pop("encode_documents")
    for name in ("one_process", "devices", "ray"):
        result[f"{name}_texts_per_s"] = round(args.n / result[f"{name}_s"], 1)
    result["ray_overhead"] = round(result["ray_s"] / result["one_process_s"], 2)
    result["devices_overhead"] = round(result["devices_s"] / result["one_process_s"], 2)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
