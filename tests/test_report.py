import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml

from browser import opened, visit
from probekit import ProbekitError
from probekit.training.facts import FactRecord
from probekit.analyses.metrics import known_counts
from probekit.report import build_report, plots
from probekit.running.results import ProbeResult
from probekit.running.runner import probe
from probekit.core.schema import CONTROL
from probekit.core.store import file_name
from probekit.figures import subplots
from probekit import palette

SCREENSHOTS = Path(__file__).resolve().parents[1] / "local" / "screenshots"  # kept by CI as an artifact
EVIL = "</script><script>window.pwned=1;alert(1)</script>"
PAGES = ["index.html", "benchmarks.html", "prompts.html", "prompt.html", "changes.html", "inside.html",
         "attention.html", "qkv.html"]


def with_facts(series: Path, out: Path) -> Path:
    """A copy of the tiny series whose record says italy's facts were injected and france's held back."""
    copy = shutil.copytree(series, out)
    FactRecord(table="countries.csv", table_sha256="0", templates={"capital": ["[X] has its capital at [Y]."]},
               seed=0, fact_share=0.1, held_back_fraction=0.5, repeats=2, injected=["italy"], held_back=["france"],
               relations=["capital"], fact_sentences=4, prose_documents=10).save(copy)
    return copy


@pytest.fixture(scope="module")
def report_command(tiny_series, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`probekit report`, in a process of its own, on results produced here: a tiny series with an injected and
    a held-back country, a benchmark with a hostile prompt, captured attention, the logit lens and head
    ablation. Returns the folder holding results/ and site/, and the finished command."""
    root = tmp_path_factory.mktemp("report")
    bench = root / "bench.csv"
    bench.write_text("relation,template,subject,answer\n"
                     "capital,the capital of [X] is [MASK].,italy,rome\n"
                     "capital,the capital of [X] is [MASK].,france,paris\n"
                     "capital,[X] is a country. its capital is [MASK].,italy,rome\n"
                     "capital,[X] is a country. its capital is [MASK].,france,paris\n"
                     f'capital,"{EVIL} of [X] is [MASK].",italy,rome\n'
                     "capital_reverse,the capital of [MASK] is [X].,rome,italy\n"
                     "capital_reverse,the capital of [MASK] is [X].,paris,france\n")
    sentences = root / "sentences.txt"
    sentences.write_text(f"the capital of italy is rome.\n{EVIL} the king.\nparis is a city.\tthe queen.\n")
    series = with_facts(tiny_series, root / "series" / "my_bert")
    probe(str(series), [str(bench)], ["lens", "ablation"], out=root / "results", sentences=str(sentences))
    proc = subprocess.run([sys.executable, "-m", "probekit", "report", str(root / "results"), "--site",
                           str(root / "site")], capture_output=True, text=True)
    return root, proc


@pytest.fixture(scope="module")
def site(report_command) -> Path:
    """The built site (its index.html's folder) every test of this module reads; built once, by the CLI."""
    root, proc = report_command
    assert proc.returncode == 0, proc.stderr
    return root / "site" / "build"


def test_site_has_the_pages_and_figures(site):
    for page in PAGES:
        assert (site / page).is_file(), page
    figures = {p.name for p in (site / "figures").glob("*")}  # none left on these pages: no folder
    assert not {"scores-bench.png", "heads-grid.png", "norms.png"} & figures  # interactive charts, numbers in data/
    assert {"bench-scores-by-relation-and-step.csv", "heads-q_norm-k_norm-v_norm-by-head-and-step.csv"} <= {
        p.name for p in (site / "data").iterdir()}
    text = (site / "index.html").read_text()
    assert "checkpoint-8" in text and "fingerprint" in text
    assert (site / "search" / "search_index.js").is_file()  # the offline plugin: search from file://
    assert {p.name for p in (site / "assets" / "vega").iterdir()} == {"vega.min.js", "LICENSE-vega"}  # runtime only


def test_every_table_has_its_downloads(site):
    for page in PAGES:
        html = (site / page).read_text()
        links = re.findall(r'href="(data/[^"]+\.(?:csv|parquet))"', html)
        assert html.count("<table>") <= len(links) // 2 + (1 if page in ("prompts.html", "prompt.html") else 0), page
        for link in links:
            assert (site / link).is_file(), link
    shown = pd.read_csv(site / "data" / "checkpoints.csv")
    assert "fingerprint" in shown and len(shown) == len(ProbeResult.load(site.parent.parent / "results").checkpoints)


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_pages_load_offline_without_errors(site, page):
    seen = visit((site / page).as_uri(), screenshot=SCREENSHOTS / f"report-{page}.png")
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.outside_requests == [] and seen.failed_requests == []
    assert seen.broken_images == []
    assert seen.dialogs == [] and seen.globals_set == []


@pytest.mark.slow
def test_head_view_draws(site):
    seen = visit((site / "attention.html").as_uri(), svg_selector=".probekit-headview svg *")
    assert seen.svg_elements > 20 and not seen.console_errors


@pytest.mark.slow
def test_overview_first_screen_states_the_result_per_relation(site):
    with opened((site / "index.html").as_uri()) as (page, seen):
        box = page.locator(".headline").bounding_box()
        text = page.locator(".headline").inner_text()
        page.wait_for_selector("#chart-p-at-1 svg.marks", timeout=10_000)
        curves = page.locator("#chart-p-at-1").bounding_box()
        legend = page.evaluate("[...document.querySelectorAll('#chart-p-at-1 .role-legend-label text')]"
                               ".map(t => t.textContent)")
        page.screenshot(path=str(SCREENSHOTS / "overview-first-screen.png"))
    assert box is not None and box["y"] < 900 * 0.6  # starts in the upper part of the first screen
    assert curves is not None and curves["y"] < 900 * 0.5 and curves["x"] > box["x"]  # the P@1 curves beside it
    assert {"capital", "capital_reverse", "injected", "held_back"} <= set(legend), legend
    for relation in ("capital", "capital_reverse"):
        assert re.search(rf"^{relation} — P@1 at step 8: injected \d\.\d\d \[\d\.\d\d, \d\.\d\d\] vs held back",
                         text, re.M), text
    assert "difference" in text and ("injected − held back arrived after step" in text
                                     or "injected − held back never cleared (not established)" in text
                                     or "injected − held back cleared at step" in text), text
    assert seen.console_errors == [] and seen.outside_requests == []


@pytest.mark.slow
def test_interactive_charts_draw_offline(site):
    with opened((site / "benchmarks.html").as_uri()) as (page, seen):
        page.wait_for_function("[...document.querySelectorAll('.probekit-chart')].every(c => "
                               "c.querySelector('.probekit-view svg.marks'))", timeout=15000)
        charts = page.locator(".probekit-chart").count()
        marks = page.evaluate("document.querySelectorAll('.probekit-chart svg .mark-line path, "
                              ".probekit-chart svg .mark-rect path').length")
        ticks = lambda: page.evaluate(  # noqa: E731
            "[...document.querySelectorAll('.probekit-chart')[0].querySelectorAll('.role-axis-label text')]"
            ".map(t => t.textContent + '@' + t.getAttribute('transform')).join(' ')")
        linear = ticks()
        page.locator(".probekit-chart").first.locator("button[data-scale=symlog]").click()
        page.wait_for_timeout(1500)
        log = ticks()
    assert charts >= 3 and marks > 10
    assert linear != log  # the step axis was redrawn on a log scale: its ticks moved
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.outside_requests == [] and seen.failed_requests == []


@pytest.mark.slow
def test_step_slider_switches_the_head_view(site):
    with opened((site / "attention.html").as_uri()) as (page, seen):
        label = lambda: page.locator(".probekit-step-label").inner_text()  # noqa: E731
        visible = ".probekit-step:not([style*='none']) .probekit-headview svg *"
        page.locator(".probekit-steps").scroll_into_view_if_needed()  # drawn when the reader gets to it
        page.wait_for_selector(visible, timeout=5000)
        last, drawn_last = label(), page.locator(visible).count()
        page.evaluate("(() => { const s = document.querySelector('.probekit-steps input');"
                      " s.value = 0; s.dispatchEvent(new Event('input')); })()")
        page.wait_for_selector(visible, timeout=5000)  # the step's view is a script loaded when it is shown
        first, drawn_first = label(), page.locator(visible).count()
        shown = page.evaluate("[...document.querySelectorAll('.probekit-step')].filter(p => p.style.display !== "
                              "'none').map(p => p.dataset.label)")
        page.screenshot(path=str(SCREENSHOTS / "attention-step-0.png"))
    assert "checkpoint-8" in last and "checkpoint-0" in first and shown == [first]
    assert drawn_last > 20 and drawn_first > 20
    assert seen.console_errors == [] and seen.outside_requests == []


@pytest.mark.slow
def test_search_finds_a_country_from_file(site):
    with opened((site / "index.html").as_uri()) as (page, seen):
        page.locator("input.md-search__input").click()
        page.wait_for_timeout(1000)  # the search worker reads its index (search/search_index.js)
        page.locator("input.md-search__input").press_sequentially("france", delay=50)
        page.wait_for_selector(".md-search-result__item", timeout=10000)
        found = page.locator(".md-search-result__item").all_inner_texts()
        page.screenshot(path=str(SCREENSHOTS / "search-france.png"))
    assert any("france" in text.lower() for text in found)
    assert seen.outside_requests == [] and seen.page_errors == []


@pytest.mark.slow
def test_prompt_table_filters_and_opens_a_prompt(site):
    with opened((site / "prompts.html").as_uri()) as (page, seen):
        rows = page.locator(".probekit-prompts tbody tr")
        everything = rows.count()
        page.locator(".probekit-prompts input[type=search]").fill("france")
        filtered = rows.all_inner_texts()
        page.locator(".probekit-prompts select[name=group]").select_option("held_back")
        held_back = rows.count()
        page.locator(".probekit-prompts tbody a").first.click()
        page.wait_for_selector(".probekit-prompt tbody tr")
        title = page.locator(".probekit-prompt-title").inner_text()
        steps = page.locator(".probekit-prompt tbody tr").count()
        page.wait_for_selector(".probekit-prompt .probekit-view svg.marks", timeout=10_000)  # Vega loads first
        drawn = page.locator(".probekit-prompt .probekit-view svg.marks").count()
        page.screenshot(path=str(SCREENSHOTS / "prompt-page.png"))
        page.evaluate("location.hash = '#999'")  # no such prompt: said, and no file asked for
        page.wait_for_function("document.querySelector('.probekit-prompt-title').textContent.startsWith('Choose')")
        emptied = page.locator(".probekit-prompt tbody tr").count()
    assert emptied == 0 and seen.failed_requests == []
    assert everything == 7 and 0 < len(filtered) < everything and all("france" in r for r in filtered)
    assert held_back == len(filtered)  # france is the held-back country
    assert "france" in title and steps == 5 and drawn == 1
    assert seen.console_errors == [] and seen.outside_requests == []


def test_prompt_files_split_the_details_and_keep_every_top_5(results, tmp_path):
    """The table's index lists every prompt; each prompt's ranks and top 5 sit in detail file id // chunk, and
    decode to the predictions' own (checked with a plain loop over the predictions table)."""
    from probekit.report.prompts import prompt_data, write_prompt_files

    predictions = pd.read_parquet(results / "predictions.parquet")
    data, _ = prompt_data(predictions)
    write_prompt_files(tmp_path, data, chunk=3)

    def loaded(file: Path):
        text = file.read_text()
        return json.loads(text[text.index("= {") + 2:].rstrip().rstrip(";"))

    index = loaded(tmp_path / "prompt-index.js")
    assert len(index["rows"]) == predictions["prompt"].nunique() == 7
    assert "<" not in (tmp_path / "prompt-index.js").read_text()  # a prompt's "</script>" cannot end the script
    assert sorted(p.name for p in (tmp_path / "prompts").iterdir()) == ["0.js", "1.js", "2.js"]
    run = predictions[(predictions["run"] == index["run"]) & predictions["step"].notna()
                      & (predictions["checkpoint"] != CONTROL)]
    for row in index["rows"]:
        entry = dict(zip(index["columns"], row))
        detail = loaded(tmp_path / "prompts" / f"{entry['id'] // 3}.js")
        mine = detail["prompts"][str(entry["id"])]
        assert mine["prompt"] == entry["prompt"]
        for i, step in enumerate(detail["steps"]):
            at = run[(run["prompt"] == entry["prompt"]) & (run["step"] == step)].iloc[0]
            assert mine["ranks"][i] == int(at["gold_rank"])
            assert [detail["vocab"][k] for k in mine["top"][i]] == [str(t) for t in list(at["topk_tokens"])[:5]]


def test_hostile_prompt_is_text_not_markup(site):
    for page in ("benchmarks.html", "attention.html"):
        html = (site / page).read_text()
        assert "<script>window.pwned" not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned" in (site / "benchmarks.html").read_text()


def test_results_without_a_run_are_refused(tmp_path):
    with pytest.raises(ProbekitError, match="no manifest.json; run `probekit probe"):
        build_report(tmp_path, tmp_path / "site")


def test_an_interrupted_results_folder_is_refused_in_one_line(results, tmp_path):
    shutil.copytree(results, tmp_path / "cut")
    (tmp_path / "cut" / "manifest.json").unlink()
    with pytest.raises(ProbekitError, match="incomplete results"):
        build_report(tmp_path / "cut", tmp_path / "site")


def test_cli_report(report_command):
    """`probekit report RESULTS --site FOLDER` builds the site (the one the other tests read) and prints its
    index.html."""
    root, proc = report_command
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("index.html") and (root / "site" / "build" / "index.html").is_file()


# ------------------------------------------------ issue 19: hostile names, site folders, serve

XSS = "x) <img src=x onerror=alert(4)> ("


@pytest.fixture(scope="module")
def results(site):
    return site.parent.parent / "results"


def _rewrite(src: Path, out: Path, checkpoints: dict | None = None, relations: dict | None = None,
             benchmarks: dict | None = None, unscorable: str | None = None, second_run: bool = False,
             analyses: list[str] = ()) -> Path:
    """A copy of the results folder `src` with names replaced (in every table and capture file name), and
    `analyses` added to those its manifest lists."""
    probed = ProbeResult.load(src)
    renames = {"checkpoint": checkpoints or {}, "duplicate_of": checkpoints or {}, "relation": relations or {},
               "benchmark": benchmarks or {}}
    frames = dict(probed.tables)
    for name, frame in frames.items():
        for column, mapping in renames.items():
            if column in frame and mapping:
                frame[column] = frame[column].map(lambda v, m=mapping: m.get(v, v))
        if second_run and name != "training":
            copy = frame.copy()
            if name == "checkpoints":
                copy["path"] = copy["path"].str.replace("my_bert", "other_run/my_bert")
            frames[name] = pd.concat([frame, copy], ignore_index=True)
    if unscorable:
        predictions = frames["predictions"]
        predictions.loc[predictions["relation"] == unscorable, ["gold_rank", "gold_prob"]] = float("nan")
    manifest = dict(probed.manifest)
    manifest["benchmarks"] = {(benchmarks or {}).get(k, k): v for k, v in manifest.get("benchmarks", {}).items()}
    manifest["analyses"] = [*manifest.get("analyses", []), *analyses]
    captures = {}
    for name, file in probed.files.items():
        new = (checkpoints or {}).get(name, name)
        captures[new] = f"attention/{file_name(new, '.safetensors')}"
        (out / "attention").mkdir(parents=True, exist_ok=True)
        shutil.copy(src / file, out / captures[new])
    return ProbeResult(frames, {**manifest, "captures": captures}).save(out)


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_folder_probekit_did_not_make_is_refused_and_kept(results, tmp_path):
    theirs = tmp_path / "project"
    (theirs / "docs").mkdir(parents=True)
    (theirs / "docs" / "index.md").write_text("# my project\n")
    (theirs / "mkdocs.yml").write_text("site_name: mine\n")
    before = _files(theirs)
    with pytest.raises(ProbekitError, match=f"{re.escape(str(theirs))}: .*not made by probekit"):
        build_report(results, theirs)
    assert _files(theirs) == before


def test_a_failed_build_leaves_the_previous_site_as_it_was(results, site, tmp_path, monkeypatch):
    site_dir = shutil.copytree(site.parent, tmp_path / "site")  # a copy of the module's site: built by probekit
    (site_dir / "notes.txt").write_text("mine\n")
    before = _files(site_dir)
    monkeypatch.setattr("probekit.report.site._mkdocs_config",
                        lambda *nav, **options: {"site_name": "x", "theme": {"name": "no-such-theme"}})
    with pytest.raises(ProbekitError, match="mkdocs build --strict failed"):
        build_report(results, site_dir)
    assert _files(site_dir) == before
    monkeypatch.undo()
    build_report(results, site_dir)
    assert (site_dir / "notes.txt").read_text() == "mine\n" and (site_dir / "build" / "index.html").is_file()
    assert sorted(p.name for p in site_dir.iterdir() if p.name.startswith(".") and p.is_dir()) == []


@pytest.fixture(scope="module")
def hostile_site(results, tmp_path_factory):
    """Checkpoints named 100, 200, …; relations with '/' and '$…$' (valid and invalid math), one unscorable."""
    root = tmp_path_factory.mktemp("hostile")
    names = sorted(set(ProbeResult.load(results).checkpoints["checkpoint"]))
    relations = {"capital": "cap/ital $x$", "capital_reverse": r"rev $\frac{$"}
    _rewrite(results, root / "results", checkpoints={n: str(100 * (i + 1)) for i, n in enumerate(names)},
             relations=relations, benchmarks={"bench": "../b"}, unscorable=relations["capital_reverse"])
    return build_report(root / "results", root / "site").parent


@pytest.fixture(scope="module")
def xss_site(results, tmp_path_factory):
    """The payloads of issue 19 in a checkpoint's, the relations' and the benchmark's names."""
    root = tmp_path_factory.mktemp("xss")
    last = ProbeResult.load(results).checkpoints.sort_values("step")["checkpoint"].iloc[-1]
    _rewrite(results, root / "results", checkpoints={last: XSS},
             relations={"capital": XSS, "capital_reverse": "r {: onclick=alert(5) }"}, benchmarks={"bench": f"b {XSS}"})
    return build_report(root / "results", root / "site").parent


def _slugged_figures(site_dir: Path) -> list[str]:
    return [p.name for p in (site_dir / "figures").glob("*") if not re.fullmatch(r"[a-z0-9._-]+", p.name)]


def test_hostile_names_build(hostile_site):
    pages = {p.name: p.read_text() for p in hostile_site.glob("*.html")}
    assert {"index.html", "benchmarks.html", "inside.html", "attention.html", "qkv.html"} <= set(pages)
    assert "no answer of this relation could be scored" in pages["benchmarks.html"]
    assert "<td>100</td>" in pages["index.html"] and "cap/ital $x$" in pages["benchmarks.html"]
    assert _slugged_figures(hostile_site) == []


def _injected(text: str) -> list[str]:
    """Tags in `text` with an on* handler attribute, or an <img src=x> (the payload's)."""
    found = []

    class Tags(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if any(a.startswith("on") for a, _ in attrs) or (tag == "img" and ("src", "x") in attrs):
                found.append(f"<{tag} {attrs}>")

    Tags().feed(text)
    return found


def test_hostile_names_stay_text(xss_site):
    pages = {p.name: p.read_text() for p in xss_site.glob("*.html")}
    for name, text in pages.items():
        assert _injected(text) == [], name
    assert "&lt;img src=x onerror=alert(4)&gt;" in pages["benchmarks.html"]
    assert _slugged_figures(xss_site) == []


def test_plot_text_is_never_math(results):
    from matplotlib.cbook import is_math_text
    from matplotlib.text import Text

    tables = ProbeResult.load(results).tables
    relation = r"$x$ and $\frac{$"
    predictions = tables["predictions"].assign(relation=relation, prompt="$a$ " + tables["predictions"]["prompt"])
    scores = tables["scores"].assign(relation=relation)
    for fig in (plots.rank_heatmap(predictions, "bench", relation), plots.score_curves(scores, "bench"),
                plots.logit_lens(made_lens_scores().assign(relation=relation, group="$g$"), relation),
                plots.known_facts(known_counts(predictions.assign(group="$g$")))):
        fig.savefig(io.BytesIO(), format="png")
        texts = [t for t in fig.findobj(Text) if "$" in t.get_text()]
        assert texts and not [t.get_text() for t in texts if t.get_parse_math() and is_math_text(t.get_text())]


def test_checkpoints_with_the_same_name_from_two_runs(results, tmp_path):
    _rewrite(results, tmp_path / "results", second_run=True)
    index = build_report(tmp_path / "results", tmp_path / "site")
    assert "checkpoint-8" in index.read_text()


@pytest.mark.slow
@pytest.mark.parametrize("page", ["index.html", "benchmarks.html", "inside.html", "attention.html", "qkv.html"])
def test_hostile_names_do_not_run_in_the_browser(xss_site, page):
    seen = visit((xss_site / page).as_uri())
    assert seen.dialogs == [] and seen.globals_set == [] and seen.injected == []
    assert seen.page_errors == [] and seen.broken_images == []


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_serve_stops_with_probekit(results, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = (f"from probekit.report import build_report; "
            f"build_report({str(results)!r}, {str(tmp_path / 'site')!r}, serve=True, port={port})")
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not _answers(port) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _answers(port), "mkdocs serve never answered"
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _answers(port) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _answers(port), "mkdocs serve outlived probekit"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def made_scores(seeds: int) -> pd.DataFrame:
    """A scores table of one relation over three steps, per seed and (with several) pooled over them."""
    runs = [f"seed-{k}" for k in range(seeds)] + (["all-seeds"] if seeds > 1 else [])
    rows = [{"checkpoint": f"{run}/checkpoint-{step}", "run": run, "step": step, "benchmark": "bench",
             "relation": "capital", "group": group, "p_at_1": p, "p_at_10": p, "mrr": p,
             **{f"{m}_{side}": p + d for m in ("p_at_1", "p_at_10", "mrr") for side, d in (("low", -0.1), ("high", 0.1))}}
            for run in runs for group in ("injected", "held_back") for step, p in ((1, 0.1), (10, 0.4), (100, 0.8))]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("seeds", [1, 3])
def test_score_curves_draw_the_intervals_as_bands(seeds):
    fig = plots.score_curves(made_scores(seeds), "bench")
    assert len(fig.axes) == 3  # one relation: a column of P@1, P@10, MRR
    for ax in fig.axes:
        bands = [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
        assert len(bands) == 2  # injected and held back
        ys = bands[0].get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(0.0) and ys.max() == pytest.approx(0.9)
        per_group = seeds + (1 if seeds > 1 else 0)  # a faint line per seed behind the pooled one
        assert len(ax.lines) == 2 * per_group
        styles = {line.get_linestyle() for line in ax.lines}
        assert styles == {"-", "--"}  # injected solid, held back dashed
        assert ax.get_xscale() == "linear"


def test_overview_states_the_difference_with_its_interval():
    n = 40
    frame = pd.DataFrame({"checkpoint": "checkpoint-8", "run": "r", "step": 8, "benchmark": "bench",
                          "relation": ["capital"] * n + ["language"] * n,
                          "group": (["injected"] * 20 + ["held_back"] * 20) * 2,
                          "template": "t", "subject": [f"s{i}" for i in range(2 * n)], "answer": "a",
                          "prompt": [f"p{i}" for i in range(2 * n)],
                          "gold_rank": [1.0] * 18 + [2.0] * 2 + [2.0] * 20 + [1.0, 2.0] * 20,
                          "gold_logprob": -1.0})
    from probekit.analyses.findings import build
    from probekit.analyses.stats import score_table
    from probekit.core.schema import CHECKPOINT_ID, RELATION_ID
    from probekit.report.overview import injected_vs_held_back

    frame = frame.assign(seed="")
    found = build({"predictions": frame, "scores": score_table(frame, [*CHECKPOINT_ID, *RELATION_ID])})
    text = "\n".join(injected_vs_held_back(found))
    assert re.search(r"\*\*capital\*\*: difference \+0\.90 \[\+0\.75, \+1\.00\], Holm p 0\.00\d+, n 20 per group — "
                     r"injected above held back\.", text), text
    assert "**language**: difference +0.00" in text and "no difference shown" in text


# ------------------------------------------------ issue 18: diff by step, findings, emergence without priors


def test_diff_takes_steps_positions_and_neighbours(results, tmp_path):
    from click.testing import CliRunner

    from probekit.cli import main
    from probekit.diff import diff_checkpoints, neighbour_pairs

    by_step, by_name = diff_checkpoints(results, "8", "4"), diff_checkpoints(results, "checkpoint-8", "checkpoint-4")
    assert (by_step.a, by_step.b) == ("checkpoint-8", "checkpoint-4")
    pd.testing.assert_frame_equal(by_step.changed_prompts, by_name.changed_prompts)
    last = diff_checkpoints(results, -1)  # the last checkpoint against the one before it
    assert (last.a, last.b) == ("checkpoint-4", "checkpoint-8")
    flips = (last.changed_prompts["change"] != "").tolist()
    assert flips == sorted(flips, reverse=True)  # prompts newly right or lost first, then the biggest moves
    assert set(last.summary.columns) >= {"relation", "group", "newly_right", "lost"}
    assert int(last.summary["newly_right"].sum()) == int((last.changed_prompts["change"] == "newly right").sum())
    assert len(neighbour_pairs(ProbeResult.load(results).predictions)) == 4
    csv = tmp_path / "moved.csv"
    run = CliRunner().invoke(main, ["diff", str(results), "8", "--csv", str(csv)])
    assert run.exit_code == 0, run.output
    assert run.output.startswith("checkpoint-4 -> checkpoint-8: +") and "newly right / -" in run.output
    assert list(pd.read_csv(csv).columns)[:5] == ["benchmark", "relation", "group", "prompt", "answer"]
    everything = CliRunner().invoke(main, ["diff", str(results)])
    assert everything.exit_code == 0 and re.search(r"checkpoint-2\s+checkpoint-4\s+2\s+4\s+bench", everything.output)
    wrong = CliRunner().invoke(main, ["diff", str(results), "3000"])
    assert wrong.exit_code == 1 and "no checkpoint named or at step '3000'" in wrong.output


def made_predictions() -> pd.DataFrame:
    """Two steps of a made-up series: a country's own capital learnt at step 10, a shared currency answered
    by the control and a held-back country as well (a prior guess, not knowledge)."""
    rows = []
    for step, ranks in ((0, {"rome": 50, "euro-it": 1, "euro-fr": 1, "paris": 40}),
                        (10, {"rome": 1, "euro-it": 1, "euro-fr": 1, "paris": 30})):
        for key, (relation, subject, answer, group) in {
                "rome": ("capital", "italy", "rome", "injected"), "paris": ("capital", "france", "paris", "held_back"),
                "euro-it": ("currency", "italy", "euro", "injected"),
                "euro-fr": ("currency", "france", "euro", "held_back")}.items():
            rows.append({"checkpoint": f"checkpoint-{step}", "run": "r", "step": step, "benchmark": "b",
                         "relation": relation, "group": group, "template": f"[X] {relation} [MASK].",
                         "subject": subject, "answer": answer, "prompt": f"{subject} {relation} [MASK].",
                         "gold_rank": float(ranks[key]), "gold_logprob": -1.0})
    return pd.DataFrame(rows)


def test_first_correct_leaves_out_prior_guesses():
    from probekit.analyses.metrics import emergence
    from probekit.report.findings import first_correct_distribution, prior_guesses

    predictions = made_predictions()
    known = emergence(predictions)
    prior = dict(zip(known["answer"] + "/" + known["group"], prior_guesses(predictions, known)))
    assert prior == {"rome/injected": False, "paris/held_back": False, "euro/injected": True, "euro/held_back": True}
    counts, summary = first_correct_distribution(predictions, known)
    assert counts.to_dict("records") == [{"benchmark": "b", "relation": "capital", "group": "injected",
                                          "first_correct": 10, "prompts": 1}]
    assert counts["first_correct"].dtype.kind == "i"  # integer steps
    currency = summary[summary["relation"] == "currency"]
    assert currency["prior guesses left out"].tolist() == [1, 1] and currency["answered at some step"].tolist() == [0, 0]


def test_relation_findings_come_from_the_tables():
    from probekit.report.findings import relation_findings
    from probekit.core.schema import CHECKPOINT_ID, RELATION_ID
    from probekit.analyses.stats import score_table

    n = 30
    rows = []
    for step, learnt in ((0, 0), (10, 5), (20, 18), (30, 20)):
        for i in range(n):
            rows.append({"checkpoint": f"checkpoint-{step}", "run": "r", "step": step, "seed": "", "benchmark": "b",
                         "relation": "capital", "group": "injected" if i < 20 else "held_back",
                         "template": "t", "subject": f"s{i}", "answer": "a", "prompt": f"p{i}",
                         "gold_rank": 1.0 if i < learnt else 5.0, "gold_logprob": -1.0, "n_pieces": 1})
    predictions = pd.DataFrame(rows)
    scores = score_table(predictions, [*CHECKPOINT_ID, *RELATION_ID])
    from probekit.analyses.findings import build

    text = "\n".join(relation_findings({"findings": build({"scores": scores, "predictions": predictions})}))
    assert text.startswith("- **capital** — P@1 at step 30: injected **1.00 [1.00, 1.00]** vs held back **0.00")
    assert "injected above held back" in text
    # 5 of 20 at step 10 against 0 of 10 held back clears 0 from step 10 on
    assert "injected − held back arrived after step 0, by step 10, and stayed to the end" in text


# ------------------------------------------------ issue 23: sections from the registry, one number per interval


def test_the_nav_is_made_from_the_analyses_sections(site):
    """Overview first, then the pages in the order of the story (when, where, details), each group in its own
    order whatever the run's order; lens and ablation share one page."""
    config = yaml.safe_load((site.parent / "mkdocs.yml").read_text())
    assert config["nav"] == [{"Overview": "index.md"}, {"When": [{"Benchmarks": "benchmarks.md"}]},
                             {"Where": [{"Logit lens &amp; ablation": "inside.md"}, {"Attention": "attention.md"},
                                        {"Q/K/V": "qkv.md"}]},
                             {"Details": [{"Prompts": "prompts.md"}, {"What changed": "changes.md"}]}]
    assert config["not_in_nav"] == "/prompt.md"
    inside = (site.parent / "docs" / "inside.md").read_text()
    assert inside.count("# Logit lens and head ablation") == 1
    assert inside.index("## Logit lens") < inside.index("## Head ablation")


def _user_section(page, tables, results):
    """A section as a user analysis would write it, named by "module:function"."""
    page.add("theirs.md", "# Their own heading", "", f"{len(tables['predictions'])} predictions in {results.name}.")


@pytest.fixture
def user_analyses(monkeypatch):
    """Two analyses registered from outside probekit: one whose section is a function set in its class body
    (called without the analysis) with a report_title, one named by "module:function" without one."""
    from probekit.analyses import REGISTRY, Analysis

    seen = []

    def mine(page, tables, results):
        seen.append(sorted(tables))
        frame = pd.DataFrame({"checkpoint": ["checkpoint-8"], "value": [EVIL]})
        page.add("mine.md", "# Not the title", "", *page.table(frame, ("mine",)))
        fig, ax = subplots(figsize=(3, 2))
        ax.plot([0, 1], [1, 0])
        page.figure("mine.md", ("mine", "line"), fig, "a figure of a user analysis")
        page.finding("- **mine** — a finding of a user analysis.")

    class Mine(Analysis):
        name, report, report_title = "mine", mine, "My analysis"

    class Theirs(Analysis):
        name, report = "theirs", "test_report:_user_section"

    monkeypatch.setitem(REGISTRY, "mine", Mine())
    monkeypatch.setitem(REGISTRY, "theirs", Theirs())
    return seen


def test_a_user_analysis_section_adds_a_page(results, tmp_path, user_analyses):
    _rewrite(results, tmp_path / "results", analyses=["mine", "theirs", "not-installed-here"])
    build_report(tmp_path / "results", tmp_path / "site")
    nav = yaml.safe_load((tmp_path / "site" / "mkdocs.yml").read_text())["nav"]
    assert nav[0] == {"Overview": "index.md"}
    assert nav[-2:] == [{"My analysis": "mine.md"}, {"Their own heading": "theirs.md"}]
    assert "manifest" in user_analyses[0] and "predictions" in user_analyses[0]
    built = tmp_path / "site" / "build"
    mine = (built / "mine.html").read_text()
    assert "&lt;/script&gt;&lt;script&gt;window.pwned" in mine and "<script>window.pwned" not in mine
    assert 'href="data/mine.csv"' in mine
    # a section's static figure (Page.figure): PNG and SVG for papers, enlarged on click
    assert re.search(r'<a [^>]*class="glightbox"[^>]*>\s*<img [^>]*src="figures/mine-line.png"', mine)
    assert (built / "figures" / "mine-line.svg").is_file()
    with opened((built / "mine.html").as_uri()) as (tab, seen):
        tab.locator("a.glightbox").first.click()
        tab.wait_for_selector(".glightbox-container .gslide-image img", state="visible", timeout=5000)
        tab.screenshot(path=str(SCREENSHOTS / "figure-enlarged.png"))
    assert seen.console_errors == [] and seen.outside_requests == []
    assert "predictions in results." in (built / "theirs.html").read_text()
    assert "a finding of a user analysis" in (built / "index.html").read_text()


def test_a_section_that_cannot_be_found_is_one_line(results, tmp_path, monkeypatch):
    from probekit.analyses import REGISTRY, Analysis

    class Broken(Analysis):
        name, report = "broken", "no_such_module:section"

    monkeypatch.setitem(REGISTRY, "broken", Broken())
    _rewrite(results, tmp_path / "results", analyses=["broken"])
    with pytest.raises(ProbekitError, match="analysis 'broken': its report section 'no_such_module:section' cannot"):
        build_report(tmp_path / "results", tmp_path / "site")


def test_a_section_writes_its_own_pages_only(tmp_path):
    from probekit.report.page import Page

    page = Page(tmp_path / "docs")
    page.analysis = "mine"
    with pytest.raises(ValueError, match="Overview"):
        page.add("index.md", "# mine")
    for name in ("../x.md", "x.html", "My Page.md"):
        with pytest.raises(ValueError, match="lower-case file name"):
            page.add(name, "x")


def made_lens_scores() -> pd.DataFrame:
    """`lens_scores` rows of one relation: two layers × two groups × two steps, a random-init control row,
    and at step 10 half of the held-back prompts unscorable (left out of the metrics, counted apart)."""
    rows = []
    for layer in (0, 1):
        for group in ("injected", "held_back"):
            for step, checkpoint in ((None, "random-init"), (0, "checkpoint-0"), (10, "checkpoint-10")):
                p = 0.0 if step is None else 0.1 * layer + (0.4 if group == "injected" else 0.2) * (step or 0) / 10
                rows.append({"checkpoint": checkpoint, "run": "r", "step": step, "seed": "", "benchmark": "b",
                             "relation": "capital", "group": group, "layer": layer, "mean_gold_logprob": -1.0,
                             "n": 10 if (group, step) != ("held_back", 10) else 5,
                             "n_unscorable": 5 if (group, step) == ("held_back", 10) else 0,
                             **{m: p for m in ("p_at_1", "p_at_10", "mrr")},
                             **{f"{m}_{side}": p + d for m in ("p_at_1", "p_at_10", "mrr")
                                for side, d in (("low", -0.05), ("high", 0.05))}, "n_seeds": 1})
    return pd.DataFrame(rows)


def test_the_lens_figure_draws_the_lens_scores_table():
    """P@1 and MRR are the table's (unscorable prompts left out, as everywhere), with its intervals as bands."""
    scores = made_lens_scores()
    fig = plots.logit_lens(scores, "capital")
    p_at_1, mrr = fig.axes[:2]
    for ax, metric in ((p_at_1, "p_at_1"), (mrr, "mrr")):
        drawn = sorted(tuple(round(float(y), 6) for y in line.get_ydata()) for line in ax.lines)
        expected = sorted(tuple(round(float(v), 6) for v in rows.sort_values("step")[metric])
                          for _, rows in scores[scores["step"].notna()].groupby(["layer", "group"]))
        assert drawn == expected
        bands = [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
        assert len(bands) == 4  # a band per layer × group
        assert {round(float(v), 6) for band in bands for v in band.get_paths()[0].vertices[:, 1]} <= {
            round(float(v), 6) for v in pd.concat([scores[f"{metric}_low"], scores[f"{metric}_high"]])}
    held_back_at_10 = scores[(scores["group"] == "held_back") & (scores["step"] == 10) & (scores["layer"] == 1)]
    assert 0.3 in {round(float(line.get_ydata()[-1]), 6) for line in p_at_1.lines}
    assert held_back_at_10["p_at_1"].item() == pytest.approx(0.3)  # of the 5 scorable prompts, not of all 10


def test_the_lens_figure_weights_relations_by_their_scorable_prompts():
    one, other = made_lens_scores(), made_lens_scores().assign(relation="language", p_at_1=1.0, n=30)
    fig = plots.logit_lens(pd.concat([one, other], ignore_index=True))
    ax = fig.axes[0]
    assert not [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection")]
    tops = {round(float(line.get_ydata()[-1]), 6) for line in ax.lines}
    assert round((0.5 * 10 + 1.0 * 30) / 40, 6) in tops  # layer 1 injected at step 10: 0.5 over 10, 1.0 over 30


def made_pair_accuracy() -> pd.DataFrame:
    """pair_accuracy rows of one benchmark: bootstrap bounds chosen apart from any Wilson interval."""
    rows = []
    for level, name in (("all", "all"), ("phenomenon", "agreement"), ("paradigm", "agreement_1")):
        for step, acc, low, high in ((0, 0.5, 0.45, 0.55), (10, 0.6, 0.52, 0.68), (20, 0.62, 0.48, 0.75)):
            rows.append({"checkpoint": f"checkpoint-{step}", "run": "r", "step": step, "seed": "", "benchmark": "p",
                         "metric": "within_word_l2r", "level": level, "name": name, "n": 50, "n_unscorable": 0,
                         "ties": 1, "accuracy": acc, "mean_margin": 0.1, "accuracy_low": low,
                         "accuracy_high": high, "n_seeds": 1})
    return pd.DataFrame(rows)


def test_the_grammar_page_shows_the_tables_bootstrap_interval():
    """One interval on the page: the table's accuracy_low/accuracy_high, in the words, table and figure."""
    from probekit.report import grammar

    accuracy = made_pair_accuracy()
    from probekit.analyses.findings import build

    found = build({"pair_accuracy": accuracy})
    table = grammar.chance_table(found, "p", None)
    overall = table[table["phenomenon"] == "all"].iloc[0]
    assert overall[["accuracy", "low", "high"]].tolist() == [0.62, 0.48, 0.75]
    assert overall["verdict"] == "chance"  # 0.48 ≤ 0.5: the bootstrap interval decides, not a Wilson one
    assert overall["emerged"] == "transient"  # above chance at step 10, not at the last
    assert ("0.62 [0.48, 0.75] over 50 pairs, **chance**; above chance cleared at step 10 but not at the last step "
            "(transient)") in grammar.findings({"findings": found})[0]
    fig = grammar.phenomenon_curves(accuracy)
    band = next(c for c in fig.axes[0].collections
                if c.__class__.__name__ in ("PolyCollection", "FillBetweenPolyCollection"))
    assert {round(float(v), 6) for v in band.get_paths()[0].vertices[:, 1]} <= {0.45, 0.55, 0.52, 0.68, 0.48, 0.75}
    assert not hasattr(grammar, "interval")


def made_capture(changed: int, tokens: list[list[str]]):
    """A one-layer, two-head Capture of the given sentences, and a second one where only sentence `changed`
    attends differently."""
    import torch

    from probekit.models.activations import Capture
    from probekit.models.hooks import hook_name

    length = max(map(len, tokens))
    logits = torch.randn(len(tokens), 2, length, length, generator=torch.Generator().manual_seed(0))
    later = logits.clone()
    later[changed] = torch.randn(2, length, length, generator=torch.Generator().manual_seed(1)) * 4
    mask = torch.tensor([[1] * len(t) + [0] * (length - len(t)) for t in tokens])
    caps = []
    for values in (logits, later):
        pattern = torch.softmax(values.masked_fill(mask[:, None, None, :] == 0, -1e9), dim=-1)
        caps.append(Capture({hook_name(0, "attn.hook_pattern"): pattern}, [list(t) for t in tokens], mask,
                            n_layers=1, n_heads=2))
    return caps


@pytest.mark.parametrize("changed", [0, 2])
def test_the_attention_pages_show_the_sentence_whose_attention_changed_most(changed):
    from probekit.report.attention import telling_sentence

    tokens = [["[CLS]", "the", "capital", "is", "rome", "[SEP]"], ["[CLS]", "a", "king", "[SEP]"],
              ["[CLS]", "the", "queen", "sings", "[SEP]"]]
    first, last = made_capture(changed, tokens)
    assert telling_sentence(first, last) == changed
    assert telling_sentence(first, first) == 0  # one captured checkpoint: the first sentence


def test_choices_have_their_page(tiny_series, tmp_path):
    """The choice analysis's section: accuracy per relation against chance (1 / (foils + 1)), its own page."""
    bench = tmp_path / "choice.csv"
    bench.write_text("relation,template,subject,answer,candidates\n"
                     "capital,the capital of [X] is [MASK].,italy,rome,paris|france\n"
                     "capital,the capital of [X] is [MASK].,france,paris,rome\n"
                     "plural,the [X] of the [MASK].,king,kings,queen\n")
    probe(str(tiny_series), [str(bench)], out=tmp_path / "results")
    build_report(tmp_path / "results", tmp_path / "site")
    page = (tmp_path / "site" / "docs" / "choices.md").read_text()
    assert page.startswith("# Choices") and "## choice" in page
    assert re.search(r"\| capital \| all \| 8 \| 2 \| 0 \| \d\.\d{3} &#91;\d\.\d{3}, \d\.\d{3}&#93; \| 0\.417 \|", page)
    assert re.search(r"\| plural \| all \| 8 \| 1 \| 0 \| .* \| 0\.500 \|", page)  # (1/3 + 1/2) / 2, and 1/2
    nav = yaml.safe_load((tmp_path / "site" / "mkdocs.yml").read_text())["nav"]
    assert {"Choices": "choices.md"} in next(group["When"] for group in nav if "When" in group)
    assert (tmp_path / "site" / "build" / "choices.html").is_file()


def test_figures_draw_a_group_they_have_no_style_for():
    """A prompt about a subject outside the series' fact record is group `other`: drawn in its own style."""
    rows = []
    for group in ("injected", "held_back", "other"):
        for step in (0, 10):
            for layer in (0, 1):
                rows.append({"checkpoint": f"checkpoint-{step}", "run": "r", "step": step, "seed": "",
                             "benchmark": "b", "relation": "capital", "group": group, "layer": layer, "n": 4,
                             "p_at_1": 0.5, "p_at_1_low": 0.4, "p_at_1_high": 0.6, "mrr": 0.6, "mrr_low": 0.5,
                             "mrr_high": 0.7, "n_seeds": 1})
    fig = plots.logit_lens(pd.DataFrame(rows))
    labels = {t.get_text() for t in fig.axes[1].get_legend().get_texts()}
    assert {"injected", "held-back", "other"} <= labels
    assert palette.group_order(["other", "held_back", "all", "injected"]) == ["injected", "held_back", "all", "other"]
