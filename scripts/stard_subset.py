"""A STARD subset small enough for `finetune --folds 5` on a CPU: the first N judged queries, every article
judged relevant to them, and D other articles drawn at random (seeded), as a BEIR folder.

    python scripts/stard_subset.py STARD_DIR OUT [--queries 150] [--others 4000] [--seed 0]

STARD_DIR holds corpus.jsonl, queries.jsonl and qrels.tsv (the shared STARD training split); OUT must not
exist. Queries keep their file order, documents their corpus order; the same arguments give the same folder.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")


def read_qrels(path: Path) -> dict[str, list[tuple[str, str]]]:
    """query id -> [(document id, score)] in file order (the first line is the header)."""
    out: dict[str, list[tuple[str, str]]] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines()[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3:
            raise ValueError(f"{path}:{n}: expected query-id, corpus-id, score separated by tabs")
        out.setdefault(fields[0], []).append((fields[1], fields[2]))
    return out


def read_jsonl(path: Path) -> list[dict]:
    """The rows of a JSON-lines file (each with an 'id')."""
    rows = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            try:
                row = json.loads(line)
            except ValueError:
                row = None
            if not isinstance(row, dict) or "id" not in row:
                raise ValueError(f"{path}:{n}: not a JSON object with an 'id'")
            rows.append(row)
    return rows


def make_subset(src: Path, out: Path, queries: int, others: int, seed: int) -> tuple[int, int]:
    """Write the subset to `out` (a new folder); returns (queries, documents) written."""
    missing = [name for name in FILES if not (src / name).is_file()]
    if missing:
        raise ValueError(f"{src}: no {', '.join(missing)} (want a STARD folder with {', '.join(FILES)})")
    if out.exists():
        raise ValueError(f"{out}: exists; not replacing it, choose another OUT")
    qrels = read_qrels(src / "qrels.tsv")
    chosen = [q for q in read_jsonl(src / "queries.jsonl") if q["id"] in qrels][:queries]
    keep = {doc for q in chosen for doc, _ in qrels[q["id"]]}
    corpus = read_jsonl(src / "corpus.jsonl")
    rest = [d["id"] for d in corpus if d["id"] not in keep]
    if others > len(rest):
        raise ValueError(f"{src / 'corpus.jsonl'}: only {len(rest)} other articles, fewer than --others {others}")
    keep |= set(random.Random(seed).sample(rest, others))
    out.mkdir(parents=True)
    docs = [d for d in corpus if d["id"] in keep]
    (out / "corpus.jsonl").write_text("".join(_line(d) for d in docs), encoding="utf-8")
    (out / "queries.jsonl").write_text("".join(_line(q) for q in chosen), encoding="utf-8")
    (out / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q['id']}\t{doc}\t{s}\n" for q in chosen for doc, s in qrels[q["id"]]), encoding="utf-8")
    return len(chosen), len(docs)


def _line(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line; bad input is one line on stderr and exit code 2."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stard_dir", type=Path, help="folder with corpus.jsonl, queries.jsonl, qrels.tsv")
    p.add_argument("out", type=Path, help="new folder for the subset")
    p.add_argument("--queries", type=int, default=150, help="the first N judged queries (default 150)")
    p.add_argument("--others", type=int, default=4000, help="random articles judged relevant to none of them")
    p.add_argument("--seed", type=int, default=0, help="seed of the random draw of other articles")
    args = p.parse_args(argv)
    try:
        n_queries, n_docs = make_subset(args.stard_dir, args.out, args.queries, args.others, args.seed)
    except (OSError, ValueError) as e:
        print(f"stard_subset: {e}", file=sys.stderr)
        return 2
    print(f"{n_queries} queries, {n_docs} documents -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
