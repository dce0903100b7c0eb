"""Write tiny random models, with no network, for tests, checks and timing:

  DIR/qwen3-embedding   a tiny Qwen3-Embedding-like sentence-transformers folder (tests/qwen3_tiny.py)
  DIR/qwen3-reranker    a tiny Qwen3-Reranker-like causal LM: Qwen-like tokenizer with "yes"/"no", ChatML template
  DIR/cross-encoder     a tiny BERT sequence classifier (one label) with MiniLM's tokenizer
  DIR/minilm-cross-encoder  (--minilm) all-MiniLM-L6-v2's encoder with a fresh random head: timing only

Their scores mean nothing. Usage: python scripts/make_tiny_models.py DIR [--minilm]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from qwen3_tiny import build_qwen3_folder  # noqa: E402
from tiny_rerankers import build_cross_encoder_folder, build_minilm_cross_encoder_folder, build_qwen3_reranker_folder  # noqa: E402

BUILDERS = {"qwen3-embedding": build_qwen3_folder, "qwen3-reranker": build_qwen3_reranker_folder,
            "cross-encoder": build_cross_encoder_folder}


def main(argv: list[str] | None = None) -> int:
    """Build each tiny model into its folder under DIR; print the folders."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir", help="folder to write the models into (created if missing)")
    p.add_argument("--minilm", action="store_true", help="also write the MiniLM-L6-sized cross-encoder (timing only)")
    args = p.parse_args(argv)
    out = Path(args.dir)
    builders = {**BUILDERS, **({"minilm-cross-encoder": build_minilm_cross_encoder_folder} if args.minilm else {})}
    for name, build in builders.items():
        print(build(out / name))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
