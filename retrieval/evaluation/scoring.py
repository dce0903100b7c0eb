"""Per-query scores computed exactly as MTEB does (pytrec_eval's trec_eval measures).

MTEB averages these over queries; we keep them per query for significance tests, plots
and cross-validated tuning, where calling the full MTEB evaluation per setting is too slow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

K_VALUES = (1, 3, 5, 10, 20, 100, 1000)
REPORT_METRICS = ("ndcg", "map", "recall", "precision", "mrr")


def ndcg_at_10(results: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> dict[str, float]:
    """nDCG@10 of each judged query (a query missing from `results` scores 0, as in MTEB)."""
    return ndcg_at_10_scorer(qrels)(results)


def ndcg_at_10_scorer(qrels: Mapping[str, Mapping[str, int]]) -> Callable[[Mapping[str, Mapping[str, float]]],
                                                                          dict[str, float]]:
    """`ndcg_at_10` against these judgments, read once (tune scores thousands of runs against the same qrels)."""
    import pytrec_eval

    judged = {q: dict(r) for q, r in qrels.items() if r}
    evaluator = pytrec_eval.RelevanceEvaluator(judged, {"ndcg_cut.10"})

    def score(results: Mapping[str, Mapping[str, float]]) -> dict[str, float]:
        scores = evaluator.evaluate({q: dict(results.get(q, {})) for q in judged})
        return {q: scores.get(q, {}).get("ndcg_cut_10", 0.0) for q in judged}

    return score


def metric_scores(scores: Mapping[str, object]) -> dict[str, float]:
    """The numeric ranking metrics of an MTEB score dict (ndcg/map/recall/precision/mrr/... at k)."""
    keep = ("ndcg_at_", "map_at_", "recall_at_", "precision_at_", "mrr_at_", "hit_rate_at_")
    return {k: float(v) for k, v in scores.items() if k.startswith(keep) or k == "main_score"}
