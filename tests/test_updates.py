"""Updates: an index updated by add / change / delete ranks like a fresh build, encodes only new texts,
survives kill -9, and takes one update at a time."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest

from retrieval.cli import main
from retrieval.corpus import Document, read_corpus
from retrieval.index.format import NotFoundError
from retrieval.retriever import HybridRetriever

QUERIES = ["theft of property", "murder with intent", "cheating and forgery", "dowry death of a woman", "trespass"]


def _docs(n: int, tag: str = "") -> list[Document]:
    words = ["theft", "murder", "cheating", "trespass", "dowry", "forgery", "bribery", "defamation", "property"]
    return [Document(f"S{i}", f"Offence {i}", f"Title: Offence {i}\nDesc: whoever commits {words[i % 9]} of "
                     f"{words[(i * 5) % 9]} shall be punished{tag}.", act="A" if i % 2 else "B") for i in range(n)]


def _same_rankings(a: HybridRetriever, b: HybridRetriever) -> None:
    assert a.ids == b.ids
    for mode in ("hybrid", "dense", "bm25"):
        for q in QUERIES:
            x, y = a.search(q, k=10, mode=mode), b.search(q, k=10, mode=mode)
            assert [h.id for h in x] == [h.id for h in y], (mode, q)
            assert np.allclose([h.score for h in x], [h.score for h in y], atol=1e-5), (mode, q)


def test_update_to_a_corpus_equals_a_fresh_build(tmp_path, encoder):
    v1 = _docs(30)[:25]
    v2 = [replace(d, text=d.text + " Amended.") if d.id in ("S1", "S2") else d for d in _docs(30) if d.id != "S7"]
    HybridRetriever.build(v1, encoder=encoder, progress=False).save(tmp_path / "ix")
    r = HybridRetriever.load(tmp_path / "ix")
    plan = r.update_to(v2)
    assert (plan.added, plan.changed, plan.removed, plan.unchanged) == (["S25", "S26", "S27", "S28", "S29"],
                                                                        ["S1", "S2"], ["S7"], 22)
    assert plan.encoded == 7  # five added texts, two changed ones
    r.save(tmp_path / "ix")
    fresh = HybridRetriever.build(v2, encoder=encoder, progress=False)
    updated = HybridRetriever.load(tmp_path / "ix")
    _same_rankings(updated, fresh)
    assert updated.info["corpus_fingerprint"] == fresh.info["corpus_fingerprint"]
    assert updated.info["generation"] == "gen-000002"


def test_add_update_delete_api(encoder):
    docs = _docs(12)
    r = HybridRetriever.build(docs[:10], encoder=encoder, progress=False)
    assert r.add(docs[10:]).added == ["S10", "S11"]
    with pytest.raises(ValueError, match="already in the index"):
        r.add(docs[:1])
    changed = replace(docs[3], text="Title: Offence 3\nDesc: bribery of a public servant.", valid_to="2020-01-01")
    plan = r.update([changed, docs[4]])
    assert (plan.changed, plan.encoded) == (["S3"], 1)
    assert r.delete(["S5"]).removed == ["S5"]
    with pytest.raises(NotFoundError, match="not in the index: 'S99'"):
        r.delete(["S99"])
    expected = [*docs[:3], changed, docs[4], *docs[6:]]
    _same_rankings(r, HybridRetriever.build(expected, encoder=encoder, progress=False))
    assert r.search("bribery public servant", k=1, allowed=r.where(as_of="2021-01-01"))[0].id != "S3"


def test_bm25_exact_on_aila_after_a_scripted_series(aila_dir):
    docs = read_corpus(aila_dir / "Object_statutes")
    r = HybridRetriever.build(docs[:150], legs=("bm25",), progress=False)
    r.add(docs[150:])
    r.update([replace(d, text=d.text + " This section was amended to include electronic records.") for d in docs[:5]])
    r.delete([d.id for d in docs[10:15]])
    expected = [replace(d, text=d.text + " This section was amended to include electronic records.") if i < 5 else d
                for i, d in enumerate(docs) if not 10 <= i < 15]
    fresh = HybridRetriever.build(expected, legs=("bm25",), progress=False)
    queries = [line.split("||", 1)[1] for line in open(aila_dir / "Query_doc.txt", encoding="utf-8") if "||" in line]
    for q in queries:
        assert [(h.id, round(h.score, 5)) for h in r.search(q, k=10)] == [(h.id, round(h.score, 5))
                                                                          for h in fresh.search(q, k=10)]


def _write(path, docs):
    path.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text, **d.metadata()}) + "\n"
                            for d in docs), encoding="utf-8")


def test_cli_update_dry_run_delete_and_filters(tmp_path, capsys):
    _write(tmp_path / "v1.jsonl", _docs(20))
    _write(tmp_path / "v2.jsonl", [replace(d, act="C") if d.id == "S0" else d for d in _docs(22) if d.id != "S9"])
    ix = str(tmp_path / "ix")
    assert main(["build", str(tmp_path / "v1.jsonl"), "--out", ix, "--legs", "bm25"]) == 0
    assert main(["update", ix, str(tmp_path / "v2.jsonl"), "--dry-run"]) == 0
    out = capsys.readouterr()
    assert out.out.split("\n")[:4] == ["+ S20", "+ S21", "~ S0: act (metadata only)", "- S9"]
    assert "nothing written" in out.err and "would encode 0 texts" in out.err
    assert main(["update", ix, str(tmp_path / "v2.jsonl"), "--keep-missing"]) == 0
    assert "added 2, changed 1, removed 0, unchanged 19" in capsys.readouterr().err
    assert main(["delete", ix, "S9", "S3"]) == 0
    assert "removed 2" in capsys.readouterr().err
    assert main(["query", ix, "theft", "--act", "C", "--json"]) == 0
    assert [h["id"] for h in json.loads(capsys.readouterr().out)["hits"]] == ["S0"]
    assert main(["query", ix, "theft", "--filter", "act = (", "--json"]) == 2
    assert "position 7" in capsys.readouterr().err
    assert main(["delete", ix, "S404"]) == 3


# Code run before `retrieval update` in a child process: it makes one step slow and touches a flag file when
# the step starts, so that the test kills the process there.
SLOW_ENCODING = ("from retrieval.dense.encoders import Encoder\nslow = Encoder.encode_documents\n"
                 "def encode(self, texts, progress=True):\n    open(FLAG, 'w').close(); time.sleep(60)\n"
                 "    return slow(self, texts, progress)\nEncoder.encode_documents = encode\n")
SLOW_FILES = ("import retrieval.index.format as store\nplain = store.sha256_file\n"  # checksums of the files just written
              "def sha256_file(path):\n    if '/.tmp-' in str(path):\n        open(FLAG, 'w').close(); time.sleep(60)\n"
              "    return plain(path)\nstore.sha256_file = sha256_file\n")
SLOW_SWITCH = ("import retrieval.index.format as store\nplain = store._write_manifest\n"  # generation in place, manifest not
               "def write_manifest(*args):\n    open(FLAG, 'w').close(); time.sleep(60)\n"
               "    return plain(*args)\nstore._write_manifest = write_manifest\n")


@pytest.mark.parametrize("step, slow, left", [
    ("encoding", SLOW_ENCODING, set()),
    ("writing the generation's files", SLOW_FILES, {"partial"}),
    ("switching the manifest", SLOW_SWITCH, {"gen-000002"}),
])
def test_kill_during_update_keeps_the_previous_generation(tmp_path, encoder, step, slow, left):
    """kill -9 at each step of an update leaves the previous generation intact (every file's sha256 checks) and
    loadable, with its old documents; the next update removes what the killed one left and succeeds."""
    docs = _docs(20)
    HybridRetriever.build(docs, encoder=encoder, progress=False).save(tmp_path / "ix")
    _write(tmp_path / "v2.jsonl", _docs(20, tag=" in full"))
    flag = tmp_path / "reached"
    script = (f"import sys, time\nFLAG = sys.argv[3]\n{slow}from retrieval.cli import main\n"
              "main(['update', sys.argv[1], sys.argv[2]])\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "ix"), str(tmp_path / "v2.jsonl"), str(flag)],
                            cwd=os.getcwd())
    deadline = time.time() + 120
    while not flag.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert flag.exists(), f"the update never reached {step}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert _leftovers(tmp_path / "ix") == left
    r = HybridRetriever.load(tmp_path / "ix", verify=True)
    assert r.info["generation"] == "gen-000001"
    assert r.document("S1")["text"] == docs[1].text and r.search("theft", k=3)
    assert main(["update", str(tmp_path / "ix"), str(tmp_path / "v2.jsonl")]) == 0  # the next update still works
    assert HybridRetriever.load(tmp_path / "ix").document("S1")["text"].endswith("in full.")
    assert _leftovers(tmp_path / "ix") == set()


def _leftovers(index) -> set[str]:
    """What an index folder holds besides its manifest's generation and lock: 'partial' for each half-written
    temporary folder (with the partial marker), the name of each generation the manifest does not name."""
    from retrieval.index.format import PARTIAL

    current = json.loads((index / "manifest.json").read_text())["generation"]
    out = set()
    for p in index.iterdir():
        if p.name.startswith(".tmp-"):
            out.add("partial" if (p / PARTIAL).is_file() else p.name)
        elif p.name.startswith("gen-") and p.name != current:
            out.add(p.name)
    return out


def test_a_second_update_waits_for_the_first(tmp_path):
    from retrieval.index.format import index_lock

    _write(tmp_path / "v1.jsonl", _docs(10))
    ix = tmp_path / "ix"
    assert main(["build", str(tmp_path / "v1.jsonl"), "--out", str(ix), "--legs", "bm25"]) == 0
    with index_lock(ix):  # another process's update holds the lock: this one waits
        proc = subprocess.Popen([sys.executable, "-m", "retrieval", "delete", str(ix), "S1"], stderr=subprocess.PIPE,
                                text=True)
        time.sleep(3)
        assert proc.poll() is None
        assert "waiting" in proc.stderr.readline()
    assert proc.wait(60) == 0
    assert "S1" not in HybridRetriever.load(ix).ids
