"""scripts/readme_figures.py: the README's demo paragraph, every figure from a findings row."""

import importlib.util
import re
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "readme_figures.py"
COLUMNS = ["kind", "analysis", "benchmark", "subject", "group", "verdict", "statistic", "value", "low", "high", "n",
           "step", "step_low", "step_high", "rule", "correction", "run"]
NAN = float("nan")


def load_script():
    spec = importlib.util.spec_from_file_location("readme_figures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(kind, subject, group, verdict, value, low, high, step=5000.0, step_low=NAN, statistic="p_at_1",
        analysis="facts", run="seed-0"):
    return dict(kind=kind, analysis=analysis, benchmark="countries", subject=subject, group=group, verdict=verdict,
                statistic=statistic, value=value, low=low, high=high, n=240, step=step, step_low=step_low,
                step_high=step, rule="r", correction="holm", run=run)


def synthetic() -> pd.DataFrame:
    """Three relations: one emerged (with an arrival interval), one transient, one never established; figures
    chosen so that no two print alike, and rows the paragraph must not read (another run, another analysis)."""
    d = "injected-held_back"
    rows = [
        row("level", "language", "injected", "measured", 0.271, 0.2349, 0.318),
        row("level", "language", "held_back", "measured", 0.131, 0.094, 0.1649),
        row("difference", "language", d, "tie", 0.14, -0.004, 0.29, statistic="difference of p_at_1"),
        row("emerged", "language", d, "transient", NAN, NAN, NAN, step=NAN, statistic="difference of p_at_1"),
        row("level", "capital", "injected", "measured", 0.4312, 0.384, 0.4751),
        row("level", "capital", "held_back", "measured", 0.0, 0.0, 0.0),
        row("difference", "capital", d, "above", 0.4312, 0.3811, 0.4802, statistic="difference of p_at_1"),
        row("emerged", "capital", d, "emerged", 0.2, 0.1, 0.3, step=2000.0, step_low=1500.0,
            statistic="difference of p_at_1"),
        row("level", "capital_reverse", "injected", "measured", 0.2133, 0.1701, 0.2549),
        row("level", "capital_reverse", "held_back", "measured", 0.0021, 0.0, 0.0083),
        row("difference", "capital_reverse", d, "above", 0.2112, 0.1688, 0.2533, statistic="difference of p_at_1"),
        row("emerged", "capital_reverse", d, "emerged", 0.1, 0.05, 0.15, step=1000.0,
            statistic="difference of p_at_1"),  # cleared from the first probed step: no step_low
        row("level", "continent", "injected", "measured", 0.28, 0.23, 0.33),
        row("level", "continent", "held_back", "measured", 0.18, 0.14, 0.22),
        row("difference", "continent", d, "tie", 0.10, -0.02, 0.17, statistic="difference of p_at_1"),
        row("emerged", "continent", d, "not_established", NAN, NAN, NAN, step=NAN, statistic="difference of p_at_1"),
        row("level", "capital", "injected", "measured", 0.99, 0.98, 1.0, analysis="pairs"),
    ]
    return pd.DataFrame(rows, columns=COLUMNS)


def test_paragraph_reads_every_figure_from_the_rows():
    figures = load_script()
    text = figures.paragraph(synthetic(), commit="abc123")
    assert "**capital 0.43 [0.38, 0.48] vs 0.00 [0.00, 0.00]**" in text
    assert "capital → country 0.21 [0.17, 0.25] vs 0.00 [0.00, 0.01]" in text
    assert "language 0.27 [0.23, 0.32] vs 0.13 [0.09, 0.16]" in text  # 0.2349 → 0.23, 0.1649 → 0.16: rounded
    assert text.index("capital 0.43") < text.index("capital → country") < text.index("language 0.27") < text.index(
        "continent 0.28")  # the README's order, not the table's
    assert "step 5,000" in text
    assert "above zero for capital +0.43 [+0.38, +0.48] and capital → country +0.21 [+0.17, +0.25]" in text
    assert "not clear of zero (a tie) for language +0.14 [-0.00, +0.29] and continent +0.10 [-0.02, +0.17]" in text
    assert "capital between steps 1,500 and 2,000" in text
    assert "capital → country from step 1,000, the first probed step" in text
    assert "language only transiently" in text and "continent never" in text
    assert "commit `abc123`" in text
    assert "0.99" not in text  # a row of another analysis is not read
    assert "\n" not in text  # one paragraph


def test_every_difference_above_is_said_once_and_figures_follow_the_rows():
    figures = load_script()
    found = synthetic()
    found = found[found["subject"].isin(["capital", "capital_reverse"])].copy()
    text = figures.paragraph(found, commit="c")
    assert "every difference's interval above zero" in text and "tie" not in text
    found.loc[(found["kind"] == "level") & (found["subject"] == "capital") & (found["group"] == "injected"),
              ["value", "low", "high"]] = [0.47, 0.42, 0.52]
    assert "**capital 0.47 [0.42, 0.52] vs 0.00 [0.00, 0.00]**" in figures.paragraph(found, commit="c")


def test_pooled_rows_are_the_main_line_and_missing_rows_are_one_error():
    figures = load_script()
    pooled = synthetic().assign(run="all-seeds")
    seeds = pd.concat([pooled, synthetic().assign(run="seed-1", value=0.777)])
    assert "0.78" not in figures.paragraph(seeds, commit="c")
    with pytest.raises(figures.FiguresError, match="several runs"):
        figures.paragraph(pd.concat([synthetic(), synthetic().assign(run="seed-1")]), commit="c")
    no_emerged = synthetic()
    no_emerged = no_emerged[~((no_emerged["kind"] == "emerged") & (no_emerged["subject"] == "continent"))]
    with pytest.raises(figures.FiguresError, match="0 rows of kind 'emerged', subject 'continent'"):
        figures.paragraph(no_emerged, commit="c")


def test_write_replaces_only_between_the_markers(tmp_path, capsys):
    figures = load_script()
    results = tmp_path / "probe"
    results.mkdir()
    synthetic().to_parquet(results / "findings.parquet")
    readme = tmp_path / "README.md"
    before, after = "# Title\n\nintro\n", "\n\nThe second installs the test tools.\n"
    readme.write_text(f"{before}{figures.START}\nold figures 0.59 [0.54, 0.64]\n{figures.END}{after}")
    assert figures.main([str(results), "--commit", "0123abcd", "--write", str(readme)]) == 0
    printed = capsys.readouterr().out.strip()
    text = readme.read_text()
    assert text == f"{before}{figures.START}\n{printed}\n{figures.END}{after}"
    assert "0.59" not in text and "commit `0123abcd`" in text
    assert figures.main([str(results), "--commit", "0123abcd", "--write", str(readme)]) == 0
    assert readme.read_text() == text  # a second write changes nothing
    readme.write_text("no markers here\n")
    assert figures.main([str(results), "--commit", "x", "--write", str(readme)]) == 1
    assert readme.read_text() == "no markers here\n"
    assert "expected one <!-- demo-figures:start -->" in capsys.readouterr().err
    assert figures.main([str(tmp_path), "--commit", "x"]) == 1
    assert re.search(r"findings.parquet: no such file", capsys.readouterr().err)


def test_commit_defaults_to_git_head(tmp_path):
    import subprocess

    figures = load_script()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=SCRIPT.parent, capture_output=True, text=True).stdout
    assert figures.head_commit(SCRIPT.parent) == head.strip() and len(head.strip()) == 40
