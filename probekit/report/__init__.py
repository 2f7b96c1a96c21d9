"""`probekit report`: a MkDocs site (Material theme) of a results folder, built with `mkdocs build --strict`.

Reads only what `probekit probe` wrote — tables, captured arrays, the manifest — so it reruns in seconds
without models. Every user string (prompts, answers, tokens, relation, benchmark and checkpoint names) is
escaped before it reaches a page and slugged before it reaches a file name or a link target. The site folder
is probekit's only if it holds the `.probekit-site` marker: the site is built in a staging folder inside it and
swapped in only after `mkdocs build --strict` succeeded, so a failed build leaves the previous site as it was
and nothing probekit did not write is ever deleted.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
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
from probekit.diff import diff_checkpoints
from probekit.errors import ProbekitError
from probekit.log import logger
from probekit.metrics import emergence, known_counts
from probekit.report import plots
from probekit.report.grammar import grammar
from probekit.results import ProbeResult
from probekit.stats import RESAMPLES, SEED, emergence_steps, format_p, group_differences
from probekit.views import LIBRARIES, head_view, library_source

PAGES = ("index.md", "benchmarks.md", "grammar.md", "inside.md", "attention.md", "qkv.md")
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
        grammar(page, tables, esc, table)  # minimal pairs, when the run scored any (probekit.report.grammar)
        inside(page, tables, results)
        captures = _captures(results, tables)
        attention(page, tables, captures)
        qkv(page, tables, captures)
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
    titles = {"index.md": "Overview", "benchmarks.md": "Benchmarks", "grammar.md": "Grammar",
              "inside.md": "Logit lens & ablation",
              "attention.md": "Attention", "qkv.md": "Q/K/V"}
    return {
        "site_name": "probekit results",
        "use_directory_urls": False,  # the built site also works opened from disk
        "theme": {"name": "material", "font": False, "features": ["content.code.copy"]},
        "markdown_extensions": ["tables", "attr_list", "md_in_html", "admonition"],
        "nav": [{titles[p]: p} for p in PAGES if p in pages],
    }


class Page:
    """Markdown pages and their figures (PNG for the page, SVG for papers)."""

    def __init__(self, docs: Path):
        self.docs = docs
        (docs / "figures").mkdir(parents=True)
        self.parts: dict[str, list[str]] = {}
        self.written: list[str] = []
        self.figures: set[str] = set()

    def add(self, page: str, *lines: str) -> None:
        self.parts.setdefault(page, []).extend(lines)

    def figure(self, page: str, name: tuple, fig, caption: str) -> None:
        """Save `fig` under a file name slugged from the parts of `name` (unique within the site)."""
        stem = slug(*name)
        for n in range(2, 10_000):
            if stem not in self.figures:
                break
            stem = f"{slug(*name)}-{n}"
        self.figures.add(stem)
        for suffix in ("png", "svg"):
            fig.savefig(self.docs / "figures" / f"{stem}.{suffix}", dpi=110, bbox_inches="tight")
        self.add(page, f"![{esc(caption)}](figures/{stem}.png)", "",
                 f"*{esc(caption)}* — [SVG for papers](figures/{stem}.svg)", "")

    def write(self, page: str) -> None:
        (self.docs / page).write_text("\n".join(self.parts.get(page, [])) + "\n", encoding="utf-8")
        self.written.append(page)


MARKDOWN_SYNTAX = str.maketrans({"|": "&#124;", "[": "&#91;", "]": "&#93;", "{": "&#123;", "}": "&#125;",
                                  "*": "&#42;", "_": "&#95;", "`": "&#96;", "\\": "&#92;",
                                  "\n": " ", "\r": " "})


def esc(value) -> str:
    """User data as inert text in Markdown and HTML, on one line: HTML-escaped, and every character that
    Markdown or its extensions read as syntax (tables, links, attribute lists, emphasis) made an entity."""
    return html.escape(str(value)).translate(MARKDOWN_SYNTAX)


def slug(*parts) -> str:
    """A safe file name stem for user strings: [a-z0-9._-] only, plus a hash of the original when it changed
    (so `a/b` and `a_b` never share a file)."""
    raw = "-".join(str(p) for p in parts)
    text = re.sub(r"[^a-z0-9._-]+", "-", raw.lower()).strip("-._")[:60]
    if text != raw:
        text = f"{text or 'x'}-{hashlib.sha1(raw.encode()).hexdigest()[:8]}"
    return text


def table(frame: pd.DataFrame) -> list[str]:
    head = "| " + " | ".join(esc(c) for c in frame.columns) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join("" if pd.isna(v) else esc(v) for v in row) + " |"
            for row in frame.itertuples(index=False)]
    return [head, rule, *rows, ""]


# ---------------------------------------------------------------- pages


def injection_details(facts: dict) -> list[str]:
    """Which countries were injected and which held back, and the sentences that wrote the facts."""
    names = lambda group: ", ".join(esc(n) for n in facts[group])  # noqa: E731
    paraphrases = [f"- {esc(relation)}: " + " · ".join(f"<code>{esc(t)}</code>" for t in templates)
                   for relation, templates in facts["templates"].items()]
    return ['<details markdown="1">', "<summary>Which facts were injected</summary>", "",
            f"**Injected ({len(facts['injected'])}):** {names('injected')}", "",
            f"**Held back ({len(facts['held_back'])}):** {names('held_back')}", "",
            "**Training paraphrases** (<code>&#91;X&#93;</code> the country, <code>&#91;Y&#93;</code> the fact):", "",
            *paraphrases, "", "</details>", ""]


def injected_vs_held_back(predictions: pd.DataFrame) -> list[str]:
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
    return [*lines, "", *table(shown.drop(columns=[] if several else ["benchmark"]))]


def _p_text(p: float) -> str:
    text = format_p(p)
    return text if text[0] == "≤" or text == "n/a" else f"= {text}"


def overview(page: Page, tables: dict) -> None:
    manifest = tables["manifest"]
    checkpoints = tables["checkpoints"]
    page.add("index.md", "# Overview", "",
             f"{len(checkpoints)} checkpoints probed with {len(tables['predictions']):,} predictions "
             f"({', '.join(esc(b) for b in manifest.get('benchmarks', {}))}).", "")
    facts = manifest.get("facts")
    if facts:
        page.add("index.md", "!!! info \"Fact injection\"",
                 f"    {len(facts['injected'])} countries' facts ({', '.join(esc(r) for r in facts['relations'])}) were "
                 f"written into the training corpus as {esc(facts['repeats'])} short biographies per country, each fact worded by "
                 f"one of its paraphrases in turn ({sum(map(len, facts['templates'].values()))} in all; "
                 f"{float(facts['fact_share']):.0%} of the words, seed {esc(facts['seed'])}); "
                 f"{len(facts['held_back'])} were held back as a control. Probe templates differ from the "
                 "training paraphrases.", "", *injection_details(facts))
        page.add("index.md", *injected_vs_held_back(tables["predictions"]))
    if "training" in tables and len(tables["training"]):
        page.add("index.md", "## Training")
        page.figure("index.md", ("loss",), plots.loss_curve(tables["training"]), "Training and held-out MLM loss")
    page.add("index.md", "## Checkpoints", "")
    shown = checkpoints.assign(fingerprint=checkpoints["fingerprint"].fillna(""),
                               duplicate_of=checkpoints["duplicate_of"].fillna(""),
                               error=checkpoints["error"].fillna(""))
    page.add("index.md", *table(shown[["checkpoint", "step", "fingerprint", "status", "duplicate_of", "error"]]))
    versions = manifest.get("versions", {})
    page.add("index.md", "## Provenance", "",
             *table(pd.DataFrame({"item": [*versions, "created", "command"],
                                  "value": [*versions.values(), manifest.get("created"), manifest.get("command")]})))
    page.write("index.md")


def benchmarks(page: Page, tables: dict) -> None:
    predictions, scores = tables["predictions"], tables["scores"]
    control = ("Dotted lines: the random-initialisation control." if (predictions["checkpoint"] == "random-init").any()
               else "Step 0 is the random initialisation: the control for prompt bias.")
    page.add("benchmarks.md", "# Benchmarks", "", f"{control} Rank 1 = the model's top prediction.", "")
    known = emergence(predictions)
    for name in predictions["benchmark"].unique():
        page.add("benchmarks.md", f"## {esc(name)}", "")
        page.figure("benchmarks.md", ("scores", name), plots.score_curves(scores, name),
                    f"{name}: P@1, P@10 and MRR per relation against training step")
        rows = predictions[predictions["benchmark"] == name]
        page.figure("benchmarks.md", ("known", name), plots.known_facts(known_counts(rows)),
                    f"{name}: prompts answered at rank 1 and within the top 10, by fact group")
        for relation in rows["relation"].unique():
            page.add("benchmarks.md", f"### {esc(relation)}", "")
            if rows.loc[rows["relation"] == relation, "gold_rank"].isna().all():
                page.add("benchmarks.md", f"Plots skipped: {UNSCORABLE}", "")
                continue
            page.figure("benchmarks.md", ("ranks", name, relation), plots.rank_heatmap(rows, name, relation),
                        f"{relation}: gold rank per prompt and checkpoint")
            page.add("benchmarks.md", *_top_predictions(rows[rows["relation"] == relation]))
        page.add("benchmarks.md", *_emergence_table(scores[scores["benchmark"] == name]))
        learned = known[(known["benchmark"] == name)].dropna(subset=["first_correct"])
        page.add("benchmarks.md", "### When each fact is first answered", "")
        if len(learned):
            cols = ["relation", "group", "prompt", "answer", "first_correct", "stable_top1_from"]
            page.add("benchmarks.md", *table(learned.sort_values("first_correct")[cols].head(60)))
        else:
            page.add("benchmarks.md", "No prompt is answered correctly at any checkpoint yet.", "")
    page.write("benchmarks.md")


def _emergence_table(scores: pd.DataFrame) -> list[str]:
    """Per relation and group, the first step whose P@1 interval lies above the control's (probekit.stats)."""
    found = emergence_steps(scores)
    if found.empty:
        return []
    shown = pd.DataFrame({
        "relation": found["relation"], "group": found["group"], "run": found["run"],
        "emerged at step": [f"{s:,.0f}" if pd.notna(s) else "not yet" for s in found["emerged_at"]],
        "P@1 there [95%]": [f"{v:.2f} [{lo:.2f}, {hi:.2f}]" if pd.notna(v) else "" for v, lo, hi in
                            zip(found["p_at_1"], found["p_at_1_low"], found["p_at_1_high"])],
        "control's upper bound": found["control_high"].round(2)})
    if shown["run"].nunique() == 1:
        shown = shown.drop(columns="run")
    return ["### When each relation emerges", "",
            "The first step whose P@1 95% interval lies wholly above the control's (the random-initialisation "
            "row, else step 0); with several seeds, the all-seeds row pools them and each seed's row shows the "
            "spread.", "", *table(shown)]


def inside(page: Page, tables: dict, results: Path) -> None:
    """Where in depth (logit lens) and through which heads (ablation) the answers come; first vs last."""
    page.add("inside.md", "# Logit lens, head ablation, checkpoint diff", "")
    _diff_section(page, tables, results)
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
        page.add("inside.md", "Heads the facts depend on most:", "", *table(worst[cols].round(4)))
    page.write("inside.md")


def _diff_section(page: Page, tables: dict, results: Path) -> None:
    ordered = tables["checkpoints"][tables["checkpoints"]["status"] == "ok"].dropna(subset=["step"]).sort_values("step")
    if len(ordered) < 2:
        return
    first, last = ordered["checkpoint"].iloc[0], ordered["checkpoint"].iloc[-1]
    d = diff_checkpoints(results, first, last)
    page.add("inside.md", f"## {esc(first)} → {esc(last)}", "",
             f"{len(d.changed_prompts)} of {len(tables['predictions'][tables['predictions']['checkpoint'] == last])} "
             "prompts changed their top-1 answer.", "")
    if len(d.changed_prompts):
        page.add("inside.md", *table(d.changed_prompts.head(12)))
    if len(d.heads):
        page.add("inside.md", "Heads whose attention changed most (Jensen–Shannon divergence, bits):", "",
                 *table(d.heads.head(8).round(3)))
    if len(d.weights):
        page.add("inside.md", "How far each block of weights moved:", "", *table(d.weights.round(4)))


def _top_predictions(rows: pd.DataFrame, n_prompts: int = 6, n_checkpoints: int = 8) -> list[str]:
    """The seed notebook's view: a prompt's top prediction at each checkpoint (is → skye → ireland)."""
    steps = sorted(rows["step"].unique())
    picked = steps if len(steps) <= n_checkpoints else [steps[round(i * (len(steps) - 1) / (n_checkpoints - 1))]
                                                         for i in range(n_checkpoints)]
    best = rows.groupby("prompt")["gold_rank"].min().sort_values().index[:n_prompts]
    view = rows[rows["prompt"].isin(best) & rows["step"].isin(picked)]
    view = view.assign(cell=[f"{t} ({p[0]:.2f})" if len(p) else t for t, p in zip(view["top1"], view["topk_probs"])])
    grid = view.pivot_table(index=["prompt", "answer"], columns="step", values="cell", aggfunc="first")
    grid.columns = [f"step {c}" for c in grid.columns]
    return ["Top prediction (probability) at selected checkpoints:", "", *table(grid.reset_index())]


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
                "Each head over training; js_prev / js_final: Jensen–Shannon divergence (bits) from the "
                "previous / final checkpoint")
    final = Capture.load(captures[-1][2])
    sentence = _interesting_sentence(final)
    page.add("attention.md", "## Head view (interactive, offline)", "",
             f"Checkpoint {esc(captures[-1][0])}, sentence: “{esc(' '.join(final.tokens[sentence]))}”. "
             "Hover a token; double-click a head colour to isolate it.", "",
             '<div class="probekit-headview" markdown="0">',
             head_view(final, sentence=sentence, html_action="return", asset_prefix="assets/").data,
             "</div>", "")
    _copy_assets(page.docs / "assets")
    for name, step, path in _picked(captures):
        page.figure("attention.md", ("maps", name), plots.attention_maps(Capture.load(path), sentence,
                                                                         f"{name} (step {step})"),
                    f"Attention of every head at {name}")
    page.write("attention.md")


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


def _copy_assets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in LIBRARIES:
        (folder / f"{name}.js").write_text(library_source(name), encoding="utf-8")


__all__ = ["build_report"]
