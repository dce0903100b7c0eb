"""Build a hybrid statute index from your own script, through the Python API.

    python scripts/build_index.py CORPUS OUT [--model M] [--legs dense,bm25]

CORPUS is an AILA folder, a .jsonl or a .csv file (id, title, text).
"""

from __future__ import annotations

import argparse
import sys

from retrieval import CorpusError, HybridRetriever, read_corpus
from retrieval.dense.encoders import EncoderConfig


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus")
    p.add_argument("out")
    p.add_argument("--model", help="sentence-transformers folder or Hub id (default: bundled MiniLM)")
    p.add_argument("--legs", default="dense,bm25")
    args = p.parse_args()
    try:
        documents = read_corpus(args.corpus)
    except CorpusError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    retriever = HybridRetriever.build(documents, encoder=EncoderConfig(model=args.model),
                                      legs=args.legs.split(","))
    manifest = retriever.save(args.out)
    print(f"{manifest['documents']} documents, legs {manifest['legs']} -> {args.out}")
    print(retriever.search(documents[0].text[:200], k=3)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
