"""The streaming BM25 build gives bm25s's own index: same vocabulary, same scores, any workers or chunk size."""

import json
import random

import bm25s
import numpy as np
import pytest

from retrieval.cli import main
from retrieval.corpus import CorpusError, Document, fingerprint
from retrieval.index.format import DocumentStream, DocumentTable, data_dir, rank_ids, read_manifest
from retrieval.lexical.analysis import Analyzer, AnalyzerSettings
from retrieval.lexical.engines import Bm25sIndex, build_bm25, load_lexical
from retrieval.perf import synthetic
from retrieval.ranking import RowOrder
from retrieval.retriever import HybridRetriever

ARRAYS = ("data", "indices", "indptr")


def reference(token_lists, k1=1.5, b=0.75):
    """The index the project built before streaming: bm25s's own `index` over ids in first-occurrence order."""
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in tokens] for tokens in token_lists]
    model = bm25s.BM25(k1=k1, b=b, method="lucene")
    model.index((ids, vocab), show_progress=False)
    return model


def assert_same(index: Bm25sIndex, model) -> None:
    ours = index._model
    assert list(ours.vocab_dict.items()) == list(model.vocab_dict.items())  # same ids, same order
    for name in ARRAYS:
        assert ours.scores[name].dtype == model.scores[name].dtype
        assert np.array_equal(ours.scores[name], model.scores[name]), name
    assert ours.scores["num_docs"] == model.scores["num_docs"]


@pytest.fixture(scope="module")
def english():
    docs = synthetic.documents(20_000)
    analyzer = Analyzer(AnalyzerSettings())
    return docs, analyzer, reference(analyzer.many(d.indexed_text() for d in docs))


def test_english_index_equals_bm25s_and_queries_score_the_same(english):
    docs, analyzer, model = english
    index = build_bm25(docs, analyzer, workers=1)
    assert_same(index, model)
    ranks = rank_ids([d.id for d in docs])
    for query in synthetic.queries(200):
        tokens = analyzer(query)
        ours, ids = index.scores(tokens), model.get_tokens_ids(tokens)
        theirs = model.get_scores(ids) if ids else np.zeros(len(docs), np.float32)
        assert np.abs(ours - theirs).max() <= 1e-6
        order = RowOrder(ranks)
        assert [r for r, _ in order.top(ours, 1000, positive=True)] == [r for r, _ in order.top(theirs, 1000, positive=True)]


def test_workers_and_chunk_size_do_not_change_the_index(english):
    docs, analyzer, model = english
    assert_same(build_bm25(docs, analyzer, workers=2, chunk_size=3001), model)
    assert_same(build_bm25(docs[:5000], analyzer, workers=3, chunk_size=997),
                reference(analyzer.many(d.indexed_text() for d in docs[:5000])))


def chinese_corpus(n: int, seed: int = 0) -> list[Document]:
    """Statute-like Chinese passages: common characters, article numbers both ways, a few Latin words."""
    rng = random.Random(seed)
    chars = "的一是了不在人有我他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可里后"
    laws = ["民法典", "刑法", "合同法", "公司法"]
    docs = []
    for i in range(n):
        words = ["".join(rng.choices(chars, k=rng.randint(1, 4))) for _ in range(rng.randint(20, 60))]
        words.insert(rng.randrange(len(words)), f"第{rng.choice(['四百六十五', '十二', '三'])}条")
        words.insert(rng.randrange(len(words)), rng.choice(["contract", "Liability", "GDP", "第12条之一"]))
        law = rng.choice(laws)
        docs.append(Document(f"Z{i}", f"中华人民共和国{law}第{i + 1}条", "，".join(words) + "。"))
    return docs


@pytest.mark.parametrize("mode", ["ngram", "accurate"])
def test_chinese_index_equals_bm25s_for_any_workers(mode):
    docs = chinese_corpus(3000)
    settings = AnalyzerSettings.for_language("zh", zh_mode=mode, law_names=mode == "accurate")
    analyzer = Analyzer.for_documents(settings, docs)
    model = reference(analyzer.many(d.indexed_text() for d in docs))
    assert_same(build_bm25(docs, analyzer, workers=1), model)
    assert_same(build_bm25(docs, analyzer, workers=2, chunk_size=700), model)


def test_token_lists_title_field_and_odd_corpora(tmp_path):
    lists = [["a", "b", "a"], [], ["c"] + ["a"] * 300, ["b", "d"]]  # an empty document; tf above 255
    assert_same(Bm25sIndex.build(lists, k1=1.2, b=0.5), reference(lists, k1=1.2, b=0.5))
    empty = Bm25sIndex.build([[], []], k1=1.5, b=0.75)  # nothing indexed: bm25s itself cannot build this
    assert empty._model.vocab_dict == {"": 0} and not empty.scores(["a"]).any()
    docs = [Document("a", "Theft", "whoever takes property"), Document("b", "Murder", "whoever causes death")]
    analyzer = Analyzer(AnalyzerSettings(title="field", title_weight=0.5))
    index = build_bm25(docs, analyzer)
    assert_same(index.title, reference([analyzer(d.title) for d in docs]))
    index.save(tmp_path)
    loaded = load_lexical(tmp_path, "bm25s", index.params, mmap=True, title_weight=0.5)
    assert np.array_equal(loaded.scores(analyzer("theft of property")), index.scores(analyzer("theft of property")))


def test_english_beyond_ascii_equals_bm25s():
    docs = [Document(str(i), "Título", t) for i, t in enumerate(
        ["Café naïve São Paulo — ½ résumé, ΟΔΟΣ and Straße", "KELVIN \u212a and the CAFÉ; x_y 42", "plain text"] * 3)]
    analyzer = Analyzer(AnalyzerSettings())
    model = reference(analyzer.many(d.indexed_text() for d in docs))
    assert_same(build_bm25(docs, analyzer, workers=2, chunk_size=2), model)


def test_document_table_streams_written_documents(tmp_path, tiny_docs):
    table = DocumentTable.write(tmp_path, iter(tiny_docs))
    assert list(table) == tiny_docs and table[1:3] == tiny_docs[1:3] and table[4] == tiny_docs[4]
    assert table.fingerprint == fingerprint(tiny_docs) and table.ids == [d.id for d in tiny_docs]
    r = HybridRetriever.build(table, legs=["bm25"], progress=False)
    r.save(tmp_path / "ix")
    assert list(DocumentTable.load(data_dir(tmp_path / "ix", read_manifest(tmp_path / "ix")))) == tiny_docs
    assert HybridRetriever.load(tmp_path / "ix").info["corpus_fingerprint"] == fingerprint(tiny_docs)


def test_retriever_build_saves_an_index_bm25s_loads(tmp_path, tiny_docs):
    r = HybridRetriever.build(tiny_docs, legs=["bm25"], progress=False, bm25_workers=2)
    r.save(tmp_path / "ix")
    analyzer = r.leg["bm25"].analyzer
    model = bm25s.BM25.load(str(data_dir(tmp_path / "ix", read_manifest(tmp_path / "ix")) / "bm25"), mmap=True)
    assert_same(Bm25sIndex(model), reference(analyzer.many(d.indexed_text() for d in tiny_docs)))
    assert HybridRetriever.load(tmp_path / "ix").search("dishonestly take movable property", k=1)[0].id == "S3"


def brute_force_top(scores: np.ndarray, depth: int, ranks: np.ndarray) -> list[int]:
    order = sorted(np.flatnonzero(scores > 0), key=lambda r: (-scores[r], -ranks[r]))
    return order[:depth]


def test_positive_top_lists_matches_only_best_first_ties_by_descending_id():
    rng = np.random.default_rng(0)
    scores = rng.choice([0.0, 0.0, 0.0, 1.5, 2.0, 2.0, 3.25], size=500).astype(np.float32)
    ranks = rng.permutation(500)
    for depth in (1, 7, 40, 200, 500, 1000):
        ranking = RowOrder(ranks).top(scores, depth, positive=True)
        assert [r for r, _ in ranking] == brute_force_top(scores, depth, ranks)
        assert all(s == scores[r] and s > 0 for r, s in ranking)
    big = rng.choice([0.0, 0.5, 1.0, 1.0, 2.0], size=10_003).astype(np.float32)  # many ties, a ragged tail
    big_ranks = rng.permutation(10_003)
    for depth in (1, 100, 2500):
        assert [r for r, _ in RowOrder(big_ranks).top(big, depth, positive=True)] == brute_force_top(big, depth, big_ranks)
    assert RowOrder(np.arange(10)).top(np.zeros(10, np.float32), 5, positive=True) == []
    assert RowOrder(ranks).top(scores, 0, positive=True) == []


def test_cli_build_workers(tmp_path, tiny_docs, capsys):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "title": d.title, "text": d.text}) + "\n" for d in tiny_docs))
    assert main(["build", str(corpus), "--legs", "bm25", "--workers", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["build", str(corpus), "--legs", "bm25", "--workers", "2", "--out", str(tmp_path / "ix")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.jsonl", "ix"]  # nothing left beside the index
    assert list(DocumentTable.load(data_dir(tmp_path / "ix", read_manifest(tmp_path / "ix")))) == tiny_docs


def test_document_stream_writes_on_its_first_pass_and_reads_back_after(tmp_path, tiny_docs):
    tiny_docs = [*tiny_docs, Document("M1", "Act", "text", act="Penal Code", valid_from="2020-01-01", meta={"k": 1})]
    stream = DocumentStream(tmp_path, iter(tiny_docs))
    first, again = iter(stream), iter(stream)
    assert next(first) == tiny_docs[0]
    with pytest.raises(RuntimeError, match="first pass"):
        next(again)  # a second pass may not start before the first has ended
    assert [tiny_docs[0], *first] == tiny_docs
    assert list(stream) == [Document(d.id, d.title, d.text) for d in tiny_docs]  # read back from the table
    table = stream.table()
    assert table.fingerprint == fingerprint(tiny_docs) and [table.get(i) for i in range(len(table))] == [
        {"id": d.id, "title": d.title, "text": d.text, **d.metadata()} for d in tiny_docs]


@pytest.mark.parametrize("title", ["join", "field"])
def test_build_into_writes_what_build_and_save_write(tmp_path, tiny_docs, title):
    analysis = AnalyzerSettings(title=title)
    HybridRetriever.build(tiny_docs, legs=["bm25"], analysis=analysis, progress=False).save(tmp_path / "a")
    streamed = HybridRetriever.build_into(tmp_path / "b", iter(tiny_docs), legs=["bm25"], analysis=analysis,
                                          progress=False)
    saved = read_manifest(tmp_path / "a")
    for key in ("files", "documents", "legs", "corpus_fingerprint", "fusion", "bm25", "versions"):
        assert streamed[key] == saved[key], key
    assert list(streamed) == list(saved)  # the same fields in the same order

    def failing():  # a corpus error halfway: the index built before stays as it was
        yield from tiny_docs[:3]
        raise CorpusError("c.jsonl:4: invalid JSON")

    with pytest.raises(CorpusError, match="c.jsonl:4"):
        HybridRetriever.build_into(tmp_path / "b", failing(), legs=["bm25"], analysis=analysis, progress=False)
    assert read_manifest(tmp_path / "b") == streamed and sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        "gen-000001", "manifest.json"]
