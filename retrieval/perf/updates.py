"""Updating 1% of an index against rebuilding it, as whole `retrieval build` and `retrieval update` commands.

The corpus is the perf generator's synthetic text (perf/synthetic.py) encoded by the bundled real model
(the build's default), so the encoding an update saves is real. 1% of the corpus changes: half of it
changed texts, a quarter new statutes, a quarter removed, at random rows (fixed seed). Three commands
run one after the other: rebuild the changed corpus from scratch (hybrid, default settings); build the
original corpus, its texts shared with the changed one read from the rebuild's vectors (`build --cache`:
setup, so that one whole encoding of the corpus is enough); update that index to the changed corpus.
The ratio is update time over rebuild time; the update sees only its own index's vectors.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..corpus import Document
from . import synthetic
from .measure import cpu_seconds, machine, run_context, shared_cpu_note

CHANGE_SHARE = 0.01
AMENDMENT = " This section is substituted by the amending act of 2024, which also raises the fine."
BEGIN, END = "<!-- index-updates -->", "<!-- /index-updates -->"


def corpora(n: int, seed: int = 0) -> tuple[list[Document], list[Document], dict]:
    """The corpus of `n` passages, the same corpus with 1% changed, added and removed, and how many of each."""
    total = max(4, round(n * CHANGE_SHARE))
    counts = {"changed": total // 2, "added": total // 4, "removed": total - total // 2 - total // 4}
    docs = synthetic.documents(n + counts["added"], seed)
    before = docs[:n]
    rows = np.random.default_rng([seed, 9]).choice(n, counts["changed"] + counts["removed"], replace=False)
    changed, removed = set(rows[:counts["changed"]].tolist()), set(rows[counts["changed"]:].tolist())
    after = [replace(d, text=d.text + AMENDMENT) if i in changed else d
             for i, d in enumerate(before) if i not in removed]
    return before, after + docs[n:], counts


def measure(n: int, work: Path, seed: int = 0) -> dict:
    """Build, update and rebuild as separate processes in `work`; their wall times and the ratio."""
    before, after, counts = corpora(n, seed)
    base = synthetic.write_jsonl(work / "corpus.jsonl", before)
    changed = synthetic.write_jsonl(work / "corpus-changed.jsonl", after)
    index, rebuilt, cache = work / "index", work / "index-rebuilt", work / "cache"
    started, cpu_start = time.perf_counter(), cpu_seconds()
    out: dict = {"n": n, "n_after": len(after), **counts, "machine": machine(), "work": str(work), "commands": {}}
    out["commands"]["rebuild"] = _timed_command("rebuild", ["build", str(changed), "--out", str(rebuilt)])
    out["cache_seconds"] = _seed_cache(rebuilt, cache)
    out["commands"]["build"] = _timed_command("build", ["build", str(base), "--out", str(index), "--cache", str(cache)])
    out["commands"]["update"] = _timed_command("update", ["update", str(index), str(changed), "--json"])
    out["plan"] = json.loads(out["commands"]["update"].pop("stdout").strip().splitlines()[-1])
    for name in ("build", "rebuild"):
        out["commands"][name].pop("stdout")
    manifest = json.loads((rebuilt / "manifest.json").read_text(encoding="utf-8"))
    out["dense"] = {"model": manifest["dense"].get("model"), "index": manifest["dense"].get("index")}
    out["ratio"] = out["commands"]["update"]["seconds"] / out["commands"]["rebuild"]["seconds"]
    return {**out, **run_context(started, cpu_start)}


def _seed_cache(index: Path, folder: Path) -> float:
    """Write the vectors stored in `index` to an embedding cache in `folder`; seconds taken."""
    from ..retriever import HybridRetriever

    t = time.perf_counter()
    retriever = HybridRetriever.load(index)
    retriever.leg["dense"].stored_cache(retriever.documents()).save(folder)
    return time.perf_counter() - t


def _timed_command(name: str, args: list[str]) -> dict:
    """Run `python -m retrieval ARGS` as its own process: wall seconds, load average before, its stdout."""
    command = ["python", "-m", "retrieval", *args]
    print(f"perf {time.strftime('%H:%M:%S')}: {name}: {' '.join(command)}", file=sys.stderr, flush=True)
    load = list(os.getloadavg())
    t = time.perf_counter()
    done = subprocess.run([sys.executable, *command[1:]], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if done.returncode:
        raise RuntimeError(f"{' '.join(command)} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}")
    return {"command": " ".join(command), "seconds": seconds, "load_average_before": load, "stdout": done.stdout}


def markdown(result: dict) -> str:
    """The headline block for performance.md: the three commands, their times and the ratio."""
    c, plan = result["commands"], result["plan"]
    rows = [f"| {name} | `{c[name]['command'].replace(result['work'], 'WORK')}` | {c[name]['seconds']:.1f} s | "
            f"{', '.join(f'{v:.2f}' for v in c[name]['load_average_before'])} |" for name in ("rebuild", "build", "update")]
    return "\n".join([
        f"## Updating 1% of a {result['n']:,}-passage index vs rebuilding it", "",
        f"Corpus: the perf generator's synthetic statutes (perf/synthetic.py, seed 0), encoded by "
        f"`{Path(result['dense']['model'] or '').name or 'the default model'}` (the bundled default; dense index "
        f"`{result['dense']['index']}`, chosen by size) plus BM25, default build settings. The changed corpus has "
        f"{result['changed']:,} texts changed, {result['added']:,} statutes added and {result['removed']:,} removed "
        f"({result['n_after']:,} passages). WORK is a temporary folder. Each command is a separate process, timed whole (start-up and "
        f"model load included).", "",
        "| step | command | wall time | load average before (1, 5, 15 min) |", "| --- | --- | ---: | --- |", *rows, "",
        "The rebuild runs first; the build of the original corpus then takes the vectors of the texts it shares "
        f"with the changed corpus from the rebuild's (written to WORK/cache in {result['cache_seconds']:.1f} s, "
        "untimed): it is setup, not part of the ratio, and the update reads only its own index.", "",
        f"**Update / rebuild wall-time ratio: {result['ratio']:.3f}** (update: {len(plan['added']):,} "
        f"added, {len(plan['changed']):,} changed, {len(plan['removed']):,} removed, {plan['unchanged']:,} unchanged; "
        f"{plan['encoded']:,} texts encoded).", "",
        f"{shared_cpu_note(result)} Command: `{result.get('command', 'python -m retrieval perf updates N')}`; "
        "figures in performance-updates.json.",
    ])
