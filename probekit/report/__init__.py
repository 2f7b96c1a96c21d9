"""`probekit report`: a MkDocs site (Material theme) of a results folder, built with `mkdocs build --strict`.

Reads only what `probekit probe` wrote — tables, captured arrays, the manifest — so it reruns in seconds
without models. Every user string (prompts, answers, tokens, relation, benchmark and checkpoint names) is
escaped before it reaches a page and slugged before it reaches a file name or a link target. The site folder
is probekit's only if it holds the `.probekit-site` marker: the site is built in a staging folder inside it and
swapped in only after `mkdocs build --strict` succeeded, so a failed build leaves the previous site as it was
and nothing probekit did not write is ever deleted.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd
import yaml

from probekit.activations import Capture
from probekit.errors import ProbekitError
from probekit.log import logger
from probekit.metrics import emergence, known_counts
from probekit.report import charts, findings, plots
from probekit.report.grammar import grammar
from probekit.report.markdown import MARKDOWN_SYNTAX, esc, slug  # noqa: F401  (esc, slug: part of this API)
from probekit.results import ProbeResult
from probekit.stats import RESAMPLES, SEED, emergence_steps, format_p, group_differences
from probekit.views import LIBRARIES, head_view, library_source

PAGES = ("index.md", "benchmarks.md", "prompts.md", "prompt.md", "changes.md", "grammar.md", "inside.md",
         "attention.md", "qkv.md")
TITLES = {"index.md": "Overview", "benchmarks.md": "Benchmarks", "prompts.md": "Prompts", "prompt.md": "Prompt",
          "changes.md": "What changed", "grammar.md": "Grammar", "inside.md": "Logit lens & ablation",
          "attention.md": "Attention", "qkv.md": "Q/K/V"}
ASSETS = Path(__file__).parent / "assets"
MARKER = ".probekit-site"
SITE_ENTRIES = (MARKER, "mkdocs.yml", "docs", "build")  # all probekit writes into a site folder, marker first
STAGING = ".probekit-staging-"


def build_report(results: str | Path, site: str | Path = "local/site", serve: bool = False,
                 port: int = 8000) -> Path:
    """Build the MkDocs site of `results` into `site/build` and return its index.html; `serve` then serves it
    on 127.0.0.1:`port` until probekit is stopped.

    `site` must be new, empty, or a site folder probekit made (it holds `.probekit-site`); only the entries
    probekit writes there (SITE_ENTRIES) are replaced, and only after the build succeeded.
    """
    results, site = Path(results), Path(site)
    probed = ProbeResult.load(results)  # names are strings in the schema: folders named 100 stay "100"
    _check_site(site)
    tables = {**probed.tables, "manifest": probed.manifest}
    staging = _staging_folder(site)
    try:
        page = Page(staging / "docs")
        overview(page, tables)
        benchmarks(page, tables)
        prompt_pages(page, tables)
        changes(page, tables, results)
        grammar(page, tables, esc, page.table)  # minimal pairs, when the run scored any (probekit.report.grammar)
        inside(page, tables)
        captures = _captures(results, tables)
        attention(page, tables, captures)
        qkv(page, tables, captures)
        page.copy_assets()
        (staging / "mkdocs.yml").write_text(yaml.safe_dump(_mkdocs_config(page.written), sort_keys=False))
        proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                               str(staging / "mkdocs.yml"), "-d", str((staging / "build").resolve())],
                              capture_output=True, text=True)
        if proc.returncode:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["no output"]
            raise ProbekitError(f"{site / 'mkdocs.yml'}: mkdocs build --strict failed: {lines[-1]}")
        (staging / MARKER).write_text(json.dumps({"made_by": "probekit report", "results": str(results)}) + "\n")
        _swap_in(staging, site)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    index = site / "build" / "index.html"
    logger.info(f"site: {index.resolve()}")
    if serve:
        _serve(site / "mkdocs.yml", port)
    return index


def _check_site(site: Path) -> None:
    """Refuse a `--site` folder that holds anything probekit did not make (no marker)."""
    if site.exists() and not site.is_dir():
        raise ProbekitError(f"{site}: not a folder; --site needs a new, empty, or probekit-made folder")
    if site.is_dir() and not (site / MARKER).is_file():
        if any(not p.name.startswith(STAGING) for p in site.iterdir()):
            raise ProbekitError(f"{site}: not made by probekit (no {MARKER}) and not empty; "
                                "choose a new or empty folder for --site")


def _staging_folder(site: Path) -> Path:
    """A fresh folder inside `site` (same file system, so the swap is a rename)."""
    try:
        site.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=STAGING, dir=site))
    except OSError as e:
        raise ProbekitError(f"{site}: cannot write the site here ({e.strerror})") from None


def _swap_in(staging: Path, site: Path) -> None:
    """Replace probekit's entries of `site` by the staged ones; the old ones go to the staging folder's bin."""
    old = staging / ".old"
    old.mkdir()
    for entry in SITE_ENTRIES:
        if (site / entry).exists() or (site / entry).is_symlink():
            (site / entry).rename(old / entry)
        (staging / entry).rename(site / entry)


def _serve(config: Path, port: int) -> None:
    """`mkdocs serve` as a child that never outlives this call: it is terminated on SIGTERM, SIGINT or any exit."""
    logger.info(f"serving on http://127.0.0.1:{port}/ (Ctrl-C stops it)")
    child = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "-f", str(config),
                              "-a", f"127.0.0.1:{port}"])
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    try:
        code = child.wait()
    finally:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if code:
        raise ProbekitError(f"{config}: mkdocs serve stopped with exit status {code} (is port {port} in use?)")


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _mkdocs_config(pages: list[str]) -> dict:
    """Material with search that works from file:// (offline plugin), click-to-enlarge figures (glightbox),
    a light/dark toggle that starts from the system's choice, and probekit's charts and tables."""
    toggle = lambda icon, name: {"icon": f"material/{icon}", "name": name}  # noqa: E731
    return {
        "site_name": "probekit results",
        "use_directory_urls": False,  # the built site also works opened from disk
        "theme": {"name": "material", "font": False, "features": ["content.code.copy", "search.highlight"],
                  "palette": [
                      {"media": "(prefers-color-scheme)", "toggle": toggle("brightness-auto", "Switch to light mode")},
                      {"media": "(prefers-color-scheme: light)", "scheme": "default",
                       "toggle": toggle("brightness-7", "Switch to dark mode")},
                      {"media": "(prefers-color-scheme: dark)", "scheme": "slate",
                       "toggle": toggle("brightness-4", "Switch to system preference")}]},
        "plugins": ["search", "offline", {"glightbox": {"zoomable": True, "skip_classes": ["no-lightbox"]}}],
        "markdown_extensions": ["tables", "attr_list", "md_in_html", "admonition", "pymdownx.details"],
        "extra_css": ["assets/probekit.css"],
        "extra": {"polyfills": ["assets/iframe-worker/shim.js"]},  # the offline plugin's search shim, shipped
        "extra_javascript": [f"assets/vega/{name}" for name in VEGA] + ["assets/probekit.js"],
        "nav": [{TITLES[p]: p} for p in PAGES if p in pages and p != "prompt.md"],
        "not_in_nav": "prompt.md",
    }


VEGA = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")


class Page:
    """Markdown pages with their figures (PNG for the page, SVG for papers), interactive charts and tables
    (each downloadable as CSV and Parquet)."""

    def __init__(self, docs: Path):
        self.docs = docs
        for folder in ("figures", "data", "assets"):
            (docs / folder).mkdir(parents=True, exist_ok=True)
        self.parts: dict[str, list[str]] = {}
        self.written: list[str] = []
        self.names: set[str] = set()

    def add(self, page: str, *lines: str) -> None:
        self.parts.setdefault(page, []).extend(lines)

    def unique(self, *name) -> str:
        """A file stem slugged from the parts of `name`, unique within the site."""
        stem = base = slug(*name)
        for n in range(2, 10_000):
            if stem not in self.names:
                break
            stem = f"{base}-{n}"
        self.names.add(stem)
        return stem

    def figure(self, page: str, name: tuple, fig, caption: str, svg: bool = True) -> list[str]:
        """Save `fig` (PNG, and SVG for papers) and add it to `page`: full column width, click to enlarge."""
        stem = self.unique(*name)
        for suffix in ("png", "svg") if svg else ("png",):
            fig.savefig(self.docs / "figures" / f"{stem}.{suffix}", dpi=100, bbox_inches="tight")
        lines = [f"![{esc(caption)}](figures/{stem}.png)", "",
                 f"*{esc(caption)}* (click to enlarge)" + (f" — [SVG for papers](figures/{stem}.svg)" if svg else ""),
                 ""]
        self.add(page, *lines)
        return lines

    def chart(self, page: str, name: tuple, chart, caption: str, step_axis: bool = True) -> None:
        """An interactive Vega-Lite chart (drawn offline by assets/probekit.js) with its caption."""
        self.add(page, charts.spec_html(chart, "chart-" + self.unique("chart", *name), step_axis), "",
                 f"*{esc(caption)}*", "")

    def table(self, frame: pd.DataFrame, name: tuple | None = None, raw: tuple[str, ...] = ()) -> list[str]:
        """`frame` as a Markdown table, its cells escaped (except columns in `raw`, already-safe markup), and
        a download line: the same table as CSV and Parquet under data/."""
        stem = self.unique("table", *(name or (len(self.names),)))
        return [*table(frame, raw), *self.downloads(frame, stem)]

    def downloads(self, frame: pd.DataFrame, stem: str) -> list[str]:
        """Write `frame` as data/`stem`.csv and .parquet; the line that links them."""
        plain = frame.copy()
        plain.columns = [str(c) for c in plain.columns]
        plain.to_csv(self.docs / "data" / f"{stem}.csv", index=False)
        _parquet_safe(plain).to_parquet(self.docs / "data" / f"{stem}.parquet", index=False)
        return [f'<p class="downloads" markdown="1">Download this table: [CSV](data/{stem}.csv) · '
                f"[Parquet](data/{stem}.parquet)</p>", ""]

    def write(self, page: str, hide_toc: bool = False) -> None:
        front = ["---", "hide:", "  - toc", "---", ""] if hide_toc else []
        (self.docs / page).write_text("\n".join([*front, *self.parts.get(page, [])]) + "\n", encoding="utf-8")
        self.written.append(page)

    def copy_assets(self) -> None:
        """probekit.js/css and the vendored Vega libraries (with their licenses); jQuery and d3 for bertviz."""
        shutil.copytree(ASSETS, self.docs / "assets", dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("README.md"))
        for name in LIBRARIES:
            (self.docs / "assets" / f"{name}.js").write_text(library_source(name), encoding="utf-8")


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of mixed Python objects as text, so any shown table can be written as Parquet."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: v if v is None or isinstance(v, str) else str(v))
    return out


def table(frame: pd.DataFrame, raw: tuple[str, ...] = ()) -> list[str]:
    """`frame` as a Markdown table; every cell escaped except those of the columns in `raw`."""
    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    cells = lambda column, v: "" if _missing(v) else (str(v) if column in raw else esc(v))  # noqa: E731
    rows = ["| " + " | ".join(cells(c, v) for c, v in zip(frame.columns, row)) + " |"
            for row in frame.itertuples(index=False)]
    return [head, rule, *rows, ""]


def _missing(value) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def collapsible(kind: str, title: str, lines: list[str], open_: bool = False) -> list[str]:
    """A Material collapsible admonition (`??? note "title"`) around `lines`."""
    marker = "???+" if open_ else "???"
    return [f'{marker} {kind} "{title}"', "", *(f"    {line}" if line else "" for line in lines), ""]


# ---------------------------------------------------------------- pages


def injection_details(facts: dict) -> list[str]:
    """Which countries were injected and which held back, and the sentences that wrote the facts."""
    names = lambda group: ", ".join(esc(n) for n in facts[group])  # noqa: E731
    paraphrases = [f"- {esc(relation)}: " + " · ".join(f"<code>{esc(t)}</code>" for t in templates)
                   for relation, templates in facts["templates"].items()]
    return [f"**Injected ({len(facts['injected'])}):** {names('injected')}", "",
            f"**Held back ({len(facts['held_back'])}):** {names('held_back')}", "",
            "**Training paraphrases** (<code>&#91;X&#93;</code> the country, <code>&#91;Y&#93;</code> the fact):", "",
            *paraphrases, ""]


def injected_vs_held_back(predictions: pd.DataFrame, page: Page | None = None) -> list[str]:
    """Sentences and a table, generated from the predictions, on whether injected facts score above held-back
    ones at the last step: each difference with its 95% bootstrap interval, and whether that excludes zero."""
    found = group_differences(predictions)
    if found.empty:
        return []
    several = found["benchmark"].nunique() > 1
    seeds = int(found["n_seeds"].max())
    over = f"{seeds} seeds and the prompts" if seeds > 1 else "the prompts"
    lines = ["## Injected vs held back", "",
             f"P@1 at step {int(found['step'].iloc[0]):,}, the last checkpoint: injected minus held-back facts, "
             f"with a 95% percentile bootstrap interval over {over} (each group's prompts resampled on their own, "
             f"{RESAMPLES:,} resamples, seed {SEED}) and a two-sided bootstrap p-value.", ""]
    for row in found.itertuples(index=False):
        name = f"{esc(row.benchmark)} / {esc(row.relation)}" if several else esc(row.relation)
        verdict = ("injected above held back: the interval excludes zero" if row.low > 0 else
                   "held back above injected: the interval excludes zero" if row.high < 0 else
                   "no difference shown: the interval includes zero")
        lines.append(f"- **{name}**: {row.injected:.2f} vs {row.held_back:.2f}, difference {row.difference:+.2f} "
                     f"[{row.low:+.2f}, {row.high:+.2f}], p {_p_text(row.p_value)} — {verdict}.")
    shown = found.assign(**{c: found[c].round(3) for c in ("injected", "held_back", "difference", "low", "high")},
                         p_value=[format_p(p) for p in found["p_value"]])
    shown = shown.drop(columns=[] if several else ["benchmark"])
    return [*lines, "", *(page.table(shown, ("injected-vs-held-back",)) if page else table(shown))]


def _p_text(p: float) -> str:
    text = format_p(p)
    return text if text[0] == "≤" or text == "n/a" else f"= {text}"


def overview(page: Page, tables: dict) -> None:
    """The finding first (per relation, generated from the tables) beside the loss curve; the evidence
    below it; checkpoints, fingerprints and provenance folded away."""
    manifest, checkpoints = tables["manifest"], tables["checkpoints"]
    facts = manifest.get("facts")
    page.add("index.md", "# What this run shows", "")
    finding = findings.relation_findings(tables) + findings.grammar_findings(tables)
    intro = (f"{len(checkpoints)} checkpoints probed with {len(tables['predictions']):,} predictions "
             f"({', '.join(esc(b) for b in manifest.get('benchmarks', {}))}). "
             "P@1 = share of prompts whose answer is the top prediction; [brackets]: 95% bootstrap interval.")
    left = ['<div markdown class="headline">', "", *(finding or ["No prompt could be scored."]), "", intro, "",
            "</div>"]
    if "training" in tables and len(tables["training"]):
        loss = charts.spec_html(charts.loss_curve(tables["training"]), "chart-loss")
        page.add("index.md", '<div class="grid probekit-overview" markdown>', "", *left, "", '<div markdown="0">', loss, "</div>",
                 "", "</div>", "")
    else:
        page.add("index.md", *left, "")
    if facts:
        page.add("index.md", *injected_vs_held_back(tables["predictions"], page))
    page.add("index.md", *_emergence_table(page, tables["scores"]))
    if facts:
        text = (f"{len(facts['injected'])} countries' facts ({', '.join(esc(r) for r in facts['relations'])}) were "
                f"written into the training corpus as {esc(facts['repeats'])} short biographies per country, each "
                f"fact worded by one of its paraphrases in turn ({sum(map(len, facts['templates'].values()))} in "
                f"all; {float(facts['fact_share']):.0%} of the words, seed {esc(facts['seed'])}); "
                f"{len(facts['held_back'])} were held back as a control. Probe templates differ from the "
                "training paraphrases.")
        page.add("index.md", *collapsible("info", "Which facts were injected", [
            text, "", *injection_details(facts)]))
    shown = checkpoints.assign(fingerprint=checkpoints["fingerprint"].fillna(""),
                               duplicate_of=checkpoints["duplicate_of"].fillna(""),
                               error=checkpoints["error"].fillna(""))
    columns = ["checkpoint", "step", "fingerprint", "status", "duplicate_of", "error"]
    page.add("index.md", *collapsible("note", "Checkpoints and their fingerprints",
                                      page.table(shown[columns], ("checkpoints",))))
    versions = manifest.get("versions", {})
    provenance = pd.DataFrame({"item": [*versions, "created", "command"],
                               "value": [*versions.values(), manifest.get("created"), manifest.get("command")]})
    page.add("index.md", *collapsible("note", "Provenance", page.table(provenance, ("provenance",))))
    page.write("index.md", hide_toc=True)


def benchmarks(page: Page, tables: dict) -> None:
    predictions, scores = tables["predictions"], tables["scores"]
    if predictions.empty:
        return
    control = ("Dotted lines: the random-initialisation control." if (predictions["checkpoint"] == "random-init").any()
               else "Step 0 is the random initialisation: the control for prompt bias.")
    page.add("benchmarks.md", "# Benchmarks", "",
             f"{control} Rank 1 = the model's top prediction. Charts: hover for values, scroll to zoom the step "
             "axis, click a legend entry to isolate it, and switch the step axis between linear and log.", "")
    known = emergence(predictions)
    found = emergence_steps(scores)
    for name in predictions["benchmark"].unique():
        page.add("benchmarks.md", f"## {esc(name)}", "")
        page.chart("benchmarks.md", ("scores", name), charts.score_curves(scores, name, found),
                   f"{name}: P@1 (P@10, MRR from the menu) per relation; injected solid, held-back dashed")
        rows = predictions[predictions["benchmark"] == name]
        static = page_figures(page, name, scores, rows)
        page.add("benchmarks.md", *collapsible("note", "Static figures (PNG, SVG for papers)", static))
        for relation in rows["relation"].unique():
            page.add("benchmarks.md", f"### {esc(relation)}", "")
            if rows.loc[rows["relation"] == relation, "gold_rank"].isna().all():
                page.add("benchmarks.md", f"Plots skipped: {UNSCORABLE}", "")
                continue
            page.chart("benchmarks.md", ("ranks", name, relation), charts.rank_heatmap(rows, name, relation),
                       f"{relation}: gold rank per prompt and checkpoint", step_axis=False)
            page.add("benchmarks.md", *_top_predictions(page, rows[rows["relation"] == relation]))
        page.add("benchmarks.md", *_first_correct(page, rows, known[known["benchmark"] == name], name))
    page.write("benchmarks.md", hide_toc=True)


def page_figures(page: Page, name: str, scores: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """The static figures of a benchmark (for papers), as lines for a collapsible section."""
    lines = []
    for key, fig, caption in (
            (("scores", name), plots.score_curves(scores, name), f"{name}: P@1, P@10 and MRR per relation"),
            (("known", name), plots.known_facts(known_counts(rows)),
             f"{name}: prompts answered at rank 1 and within the top 10, by fact group")):
        lines += _take(page, "benchmarks.md", lambda: page.figure("benchmarks.md", key, fig, caption))
    return lines


def _take(page: Page, name: str, make) -> list[str]:
    """Run `make` (which adds lines to page `name`) and return those lines, removed from the page."""
    before = len(page.parts.get(name, []))
    make()
    added = page.parts[name][before:]
    del page.parts[name][before:]
    return added


def _emergence_table(page: Page, scores: pd.DataFrame) -> list[str]:
    """Per relation and group, the first step whose P@1 interval lies above the control's (probekit.stats)."""
    found = emergence_steps(scores)
    if found.empty:
        return []
    shown = pd.DataFrame({
        "benchmark": found["benchmark"], "relation": found["relation"], "group": found["group"],
        "run": found["run"],
        "emerged at step": [f"{s:,.0f}" if pd.notna(s) else "not yet" for s in found["emerged_at"]],
        "P@1 there [95%]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(v) else "" for v, lo, hi in
                            zip(found["p_at_1"], found["p_at_1_low"], found["p_at_1_high"])],
        "control's upper bound": found["control_high"].round(2)})
    drop = [c for c in ("run", "benchmark") if shown[c].nunique() == 1]
    return ["## When each relation emerges", "",
            "The first step whose P@1 95% interval lies wholly above the control's (the random-initialisation "
            "row, else step 0); with several seeds, the all-seeds row pools them and each seed's row shows the "
            "spread.", "", *page.table(shown.drop(columns=drop), ("emergence",))]


def _first_correct(page: Page, rows: pd.DataFrame, known: pd.DataFrame, name: str) -> list[str]:
    """When each fact is first answered: the distribution of first-correct steps per relation and group,
    prior guesses left out."""
    counts, summary = findings.first_correct_distribution(rows, known)
    lines = ["### When each fact is first answered", "",
             "Per relation and fact group, how many prompts are first answered at rank 1 at each step. Left out "
             "as prior guesses: answers the random-initialisation control (else step 0) already gives for that "
             "template, and answers a held-back prompt about another country also gets (e.g. a continent or "
             "currency shared by many countries).", ""]
    if counts.empty:
        return [*lines, "No prompt is answered correctly at any checkpoint, prior guesses left out.", ""]
    lines += _take(page, "benchmarks.md", lambda: page.chart(
        "benchmarks.md", ("first-correct", name), charts.first_correct(counts),
        f"{name}: prompts first answered at each step (prior guesses left out)", step_axis=False))
    return [*lines, *page.table(summary.drop(columns="benchmark"), ("first-correct", name))]


def _picked_steps(rows: pd.DataFrame, n_checkpoints: int) -> list:
    """The first and last steps and, between them, the steps where a shown prompt's top answer changed."""
    steps = sorted(rows["step"].dropna().unique())
    if len(steps) <= n_checkpoints:
        return steps
    ordered = rows.sort_values(["prompt", "step"], kind="stable")
    top1 = ordered["top1"].astype(object)
    moved = (top1 != top1.groupby(ordered["prompt"]).shift()) & ordered["prompt"].duplicated()
    changed = sorted(set(ordered.loc[moved.to_numpy(bool), "step"].dropna()) - {steps[0], steps[-1]})
    middle = changed if len(changed) <= n_checkpoints - 2 else [
        changed[round(i * (len(changed) - 1) / (n_checkpoints - 3))] for i in range(n_checkpoints - 2)]
    return sorted({steps[0], *middle, steps[-1]})


def _top_predictions(page: Page, rows: pd.DataFrame, n_prompts: int = 6, n_checkpoints: int = 7) -> list[str]:
    """The seed notebook's view: a prompt's top prediction at each checkpoint (is → skye → ireland), at the
    steps where it changes, with the last checkpoint always shown and correct answers in bold."""
    rows = rows[rows["checkpoint"] != "random-init"].dropna(subset=["step"])
    last = rows["step"].max()
    final = rows[rows["step"] == last].groupby("prompt")["gold_rank"].min()
    per_group = max(1, n_prompts // max(1, rows["group"].nunique()))
    best = [p for _, g in rows.groupby("group", sort=True) for p in
            final.reindex(g["prompt"].unique()).sort_values().index[:per_group]]
    shown = rows[rows["prompt"].isin(best)]
    picked = _picked_steps(shown, n_checkpoints)
    view = shown[shown["step"].isin(picked)]
    cell = [f"**{esc(t)}** ✓" if r == 1 else esc(t) for t, r in zip(view["top1"], view["gold_rank"])]
    view = view.assign(cell=[f"{c} ({p[0]:.2f})" if len(p) else c for c, p in zip(cell, view["topk_probs"])])
    grid = view.pivot_table(index=["group", "prompt", "answer"], columns="step", values="cell", aggfunc="first")
    grid.columns = [f"step {int(c):,}" for c in grid.columns]
    grid = grid.reset_index()
    return ["Top prediction (probability) at the first and last checkpoints and where the answer changed; "
            "**bold ✓** = the gold answer.", "",
            *page.table(grid, ("top", rows["relation"].iloc[0]), raw=tuple(c for c in grid.columns if c.startswith("step ")))]


def prompt_pages(page: Page, tables: dict) -> None:
    """Every prompt in a searchable, sortable table, each opening its page: gold rank and top 5 over training."""
    from probekit.report.prompts import prompt_data

    predictions = tables["predictions"]
    if predictions.empty:
        return
    data, index = prompt_data(predictions)
    (page.docs / "assets" / "prompt-data.js").write_text(
        "window.probekitPrompts = " + json.dumps(data, separators=(",", ":")).replace("<", "\\u003c") + ";\n",
        encoding="utf-8")
    groups = "".join(f'<option value="{esc(g)}">{esc(g)}</option>' for g in sorted(index["group"].unique()))
    heads = "".join(f'<th data-key="{key}">{label}</th>' for key, label in (
        ("relation", "relation"), ("group", "group"), ("prompt", "prompt"), ("answer", "answer"),
        ("final_rank", "final rank"), ("first_correct", "first step correct")))
    page.add("prompts.md", "# Prompts", "",
             f"All {len(index):,} prompts (seed shown: {esc(data['run'])}). Type to filter; click a column to sort; "
             "click a prompt for its gold rank and top 5 over training.", "",
             '<div class="probekit-prompts" markdown="0"><input type="search" placeholder="filter: country, '
             f'answer, relation…" aria-label="filter prompts"><select name="group"><option value="">every group'
             f'</option>{groups}</select><span class="probekit-count"></span><table><thead><tr>{heads}</tr></thead>'
             "<tbody></tbody></table></div>", "",
             '<script src="assets/prompt-data.js"></script>', "",
             *page.downloads(index.drop(columns=["id"]), page.unique("table", "prompts")))
    page.write("prompts.md", hide_toc=True)
    page.add("prompt.md", "# Prompt", "",
             '<div class="probekit-prompt" markdown="0"><h2 class="probekit-prompt-title"></h2>'
             '<div class="probekit-view"></div><table><thead><tr><th>step</th><th>gold rank</th><th>1st</th>'
             "<th>2nd</th><th>3rd</th><th>4th</th><th>5th</th></tr></thead><tbody></tbody></table></div>", "",
             '<script src="assets/prompt-data.js"></script>', "",
             "[All prompts](prompts.md)", "")
    page.write("prompt.md", hide_toc=True)


def changes(page: Page, tables: dict, results: Path) -> None:
    """What changed between neighbouring checkpoints: +N newly right / −M lost per relation and group, and
    the prompts whose gold rank moved most."""
    from probekit.diff import head_change, neighbour_pairs, neighbour_summary, rank_changes

    predictions = tables["predictions"]
    pairs = neighbour_pairs(predictions)
    if not pairs:
        return
    summary = neighbour_summary(predictions)
    summary = summary.assign(cell=[f"+{r} / −{m}" if r or m else "·" for r, m in
                                   zip(summary["newly_right"], summary["lost"])])
    several = summary["benchmark"].nunique() > 1
    summary["column"] = [(f"{b} / " if several else "") + f"{r} ({g.replace('_', '-')})"
                         for b, r, g in zip(summary["benchmark"], summary["relation"], summary["group"])]
    wide = summary.pivot_table(index=["from_step", "to_step"], columns="column", values="cell", aggfunc="first",
                               sort=False).reset_index()
    wide.insert(0, "steps", [f"{int(a):,} → {int(b):,}" for a, b in zip(wide.pop("from_step"), wide.pop("to_step"))])
    page.add("changes.md", "# What changed at each step", "",
             "Between each pair of neighbouring checkpoints: prompts newly answered at rank 1 (+N) and prompts "
             "that lost rank 1 (−M), per relation and fact group (· = none either way). Below, each step's prompts whose gold rank "
             "moved most. `probekit diff RESULTS 3000` prints the same for one step.", "",
             *page.table(wide, ("changes",)))
    steps = predictions.drop_duplicates("checkpoint").set_index("checkpoint")["step"]
    for a, b in reversed(pairs):
        moved = rank_changes(predictions, a, b)
        right, lost = int((moved["change"] == "newly right").sum()), int((moved["change"] == "lost").sum())
        shown = moved.head(12).rename(columns={f"top1_{a}": "top-1 before", f"top1_{b}": "top-1 after",
                                               f"gold_rank_{a}": "rank before", f"gold_rank_{b}": "rank after"})
        body = page.table(shown, ("moved", a, b)) if len(shown) else ["No prompt changed.", ""]
        page.add("changes.md", *collapsible("note", f"step {int(steps[a]):,} → {int(steps[b]):,} "
                                            f"({esc(a)} → {esc(b)}): +{right} newly right / −{lost} lost", body))
    a, b = pairs[-1]
    heads = head_change(results, tables["manifest"].get("captures", {}), a, b)
    if len(heads):
        page.add("changes.md", f"## Attention, {esc(a)} → {esc(b)}", "",
                 "Heads whose attention changed most on the captured sentences (Jensen–Shannon divergence, "
                 "bits); `probekit diff` also measures how far each block of weights moved.", "",
                 *page.table(heads.head(8).round(3), ("heads-changed",)))
    page.write("changes.md", hide_toc=True)


def inside(page: Page, tables: dict) -> None:
    """Where in depth (logit lens) and through which heads (ablation) the answers come."""
    if "lens" not in tables and "ablation" not in tables:
        return
    page.add("inside.md", "# Logit lens and head ablation", "")
    if "lens" in tables:
        page.add("inside.md", "## Logit lens", "",
                 "The MLM head applied to each layer's hidden state at the [MASK]: where in depth the answer "
                 "appears, and since when in training.", "")
        lens = tables["lens"]
        for relation in lens["relation"].unique():
            if lens.loc[lens["relation"] == relation, "gold_rank"].isna().all():
                page.add("inside.md", f"{esc(relation)}: logit lens skipped, {UNSCORABLE}", "")
                continue
            page.figure("inside.md", ("lens", relation), plots.logit_lens(lens, relation),
                        f"{relation}: P@1 and MRR read at each layer")
    if "ablation" in tables:
        ablation = tables["ablation"]
        last = ablation.loc[ablation["step"].idxmax(), "checkpoint"]
        page.add("inside.md", "## Head ablation", "",
                 "Each head's output zeroed in turn; all prompts rescored in one batched pass per head.", "")
        page.figure("inside.md", ("ablation",), plots.ablation_effects(ablation, last),
                    f"Change in gold log-probability per relation when each head is zeroed ({last})")
        worst = ablation[ablation["checkpoint"] == last].nsmallest(8, "delta_mean_gold_logprob")
        cols = ["relation", "group", "layer", "head", "p_at_1", "delta_p_at_1", "delta_mean_gold_logprob"]
        page.add("inside.md", "Heads the facts depend on most:", "", *page.table(worst[cols].round(4), ("ablation",)))
    page.write("inside.md")


def _captures(results: Path, tables: dict) -> list[tuple[str, int, Path]]:
    """(checkpoint, step, capture file) in training order, for the captures the run's manifest lists."""
    files = tables["manifest"].get("captures", {})
    order = tables["checkpoints"].dropna(subset=["step"]).sort_values("step", kind="stable")
    return [(name, int(step), results / files[name]) for name, step in zip(order["checkpoint"], order["step"])
            if name in files]


def _picked(captures: list, n: int = 3) -> list:
    return captures if len(captures) <= n else [captures[0], captures[len(captures) // 2], captures[-1]]


def attention(page: Page, tables: dict, captures: list) -> None:
    if "heads" not in tables or not captures:
        return
    heads = tables["heads"]
    page.add("attention.md", "# Attention", "",
             "Head metrics after Clark et al. (2019), averaged over the captured sentences' real tokens.", "")
    shown = [c[0] for c in _picked(captures, 4)]
    page.figure("attention.md", ("heads-grid",),
                plots.head_heatmaps(heads, ["attn_cls", "attn_sep", "attn_prev", "attn_self", "entropy_ratio"], shown),
                "Layer × head: attention to [CLS], to [SEP], to the previous token, to itself; entropy / uniform")
    page.figure("attention.md", ("heads-change",),
                plots.head_trajectories(heads, ["entropy_ratio", "attn_prev", "js_prev", "js_final"]),
                "Each head over training, the heads that end most specialised labelled by their role; js_prev / "
                "js_final: Jensen–Shannon divergence (bits) from the previous / final checkpoint")
    sentence = _interesting_sentence(Capture.load(captures[-1][2]))
    page.add("attention.md", *step_slider(page, captures, sentence))
    page.write("attention.md", hide_toc=True)


def step_slider(page: Page, captures: list, sentence: int) -> list[str]:
    """bertviz's head view and the attention maps of every captured checkpoint, one shown at a time, chosen
    with a slider (the last checkpoint first)."""
    panes = []
    for i, (name, step, path) in enumerate(captures):
        cap = Capture.load(path)
        html = head_view(cap, sentence=sentence, html_action="return", asset_prefix="assets/").data
        stem = page.unique("maps", name)
        plots.attention_maps(cap, sentence, f"{name} (step {step:,})").savefig(
            page.docs / "figures" / f"{stem}.png", dpi=90, bbox_inches="tight")
        label = f"{esc(name)} (step {step:,})"
        panes.append(f'<div class="probekit-step" data-label="{label}"><div class="probekit-headview">{html}</div>'
                     f'<p><a class="glightbox" href="figures/{stem}.png"><img src="figures/{stem}.png" '
                     f'alt="attention of every head at {label}" loading="lazy"></a></p></div>')
    tokens = " ".join(Capture.load(captures[-1][2]).tokens[sentence])
    return ["## Head view and attention maps at every checkpoint (interactive, offline)", "",
            f"Sentence: “{esc(tokens)}”. Move the slider to choose the checkpoint; in the head view hover a token, "
            "double-click a head colour to isolate it; click the maps to enlarge them.", "",
            f'<div class="probekit-steps" markdown="0"><label>checkpoint <input type="range" min="0" '
            f'max="{len(captures) - 1}" value="{len(captures) - 1}" step="1" aria-label="checkpoint"></label>'
            f'<span class="probekit-step-label"></span>{"".join(panes)}</div>', ""]


def qkv(page: Page, tables: dict, captures: list) -> None:
    if "heads" not in tables or not captures:
        return
    page.add("qkv.md", "# Q/K/V", "")
    page.figure("qkv.md", ("norms",), plots.head_trajectories(tables["heads"], ["q_norm", "k_norm", "v_norm"]),
                "Mean L2 norm of each head's queries, keys and values over training")
    final = Capture.load(captures[-1][2])
    sentence = _interesting_sentence(final)
    for layer in range(final.n_layers):
        page.figure("qkv.md", ("qk-layer", layer), plots.qk_scores(final, layer, sentence),
                    f"Layer {layer} at {captures[-1][0]}: Q·Kᵀ/√d scores beside the attention they become")
    page.write("qkv.md")


def _interesting_sentence(cap: Capture) -> int:
    """The first captured sentence that mentions a capital (the shipped set starts with them)."""
    for i, tokens in enumerate(cap.tokens):
        if "capital" in tokens:
            return i
    return 0


UNSCORABLE = "no answer of this relation could be scored (every gold rank is missing)."


__all__ = ["build_report"]
