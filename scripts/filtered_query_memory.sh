#!/usr/bin/env bash
# Peak RSS of one filtered query at 100,000 statutes (BM25-only index): checkout $1 vs checkout $2 (e.g. 73051a6).
# Run in an empty folder; the corpus and index are made there once (docs/performance.md has the figures).
set -e
NEW=$1 OLD=$2 PY=${PY:-$1/.venv/bin/python}
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
[ -f statutes-100k.jsonl ] || PYTHONPATH=$NEW $PY - <<'PY'
import json
from retrieval.perf import synthetic
with open("statutes-100k.jsonl", "w", encoding="utf-8") as f:
    for i, d in enumerate(synthetic.iter_documents(100_000)):
        f.write(json.dumps({"id": d.id, "title": d.title, "text": d.text, "act": f"Act {i % 50}",
                            "valid_from": "2000-01-01"}) + "\n")
PY
[ -d ix-100k ] || PYTHONPATH=$NEW $PY -m retrieval build statutes-100k.jsonl --legs bm25 --out ix-100k
Q=$(PYTHONPATH=$NEW $PY -c "from retrieval.perf import synthetic; print(synthetic.queries(1)[0])")
for tree in $OLD $NEW; do
  for opt in "" "--act=Act 7"; do
    for r in 1 2 3; do
      PYTHONPATH=$tree /usr/bin/time -f "$tree ${opt:-unfiltered} peak_rss_kb %M wall_s %e" $PY -m retrieval query ix-100k "$Q" -k 10 ${opt:+"$opt"} >/dev/null 2>>times.err
    done
  done
done
grep peak_rss times.err
