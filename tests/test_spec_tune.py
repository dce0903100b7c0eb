"""`tune` hands the settings it chose and their provenance, as run_tune returns them apart, straight to the settings
file's one writer (settings.write_settings)."""

from __future__ import annotations

import json

from test_bench import write_dataset

from retrieval import settings as settings_module
from retrieval.cli import main
from retrieval.evaluation import tune
from retrieval.settings import Settings, read_settings


def test_run_tune_returns_the_chosen_settings_and_their_provenance_apart_and_tune_writes_them_as_given(
        tmp_path, monkeypatch):
    returned, written = [], []
    run, write = tune.run_tune, settings_module.write_settings
    monkeypatch.setattr(tune, "run_tune", lambda cfg: returned.append(run(cfg)) or returned[-1])
    monkeypatch.setattr(settings_module, "write_settings",
                        lambda path, settings, **extra: written.append((settings, extra)) or write(path, settings, **extra))
    data = write_dataset(tmp_path / "tiny")
    assert main(["tune", "--dataset", str(data), "--out", str(tmp_path / "t"), "--folds", "3", "--no-chunking"]) == 0
    (report, chosen, provenance), = returned
    assert isinstance(chosen, Settings) and written == [(chosen, provenance)]
    assert provenance == {"tuned_on": f"tiny, all {report['queries']} queries",
                          "out_of_fold_ndcg_at_10": report["out_of_fold"]["ndcg_at_10"], "model": report["model"]}
    assert chosen.to_dict() == {k: report["chosen"][k] for k in chosen.to_dict()}  # the setting the report chose
    assert read_settings(tmp_path / "t" / "fusion.json") == chosen
    saved = json.loads((tmp_path / "t" / "fusion.json").read_text(encoding="utf-8"))
    assert {k: saved[k] for k in provenance} == provenance
