"""`probekit report`: a MkDocs site (Material theme) of a results folder, built with `mkdocs build --strict`.

Reads only what `probekit probe` wrote — tables, captured arrays, the manifest — so it reruns in seconds
without models. Every user string (prompts, answers, tokens) is HTML-escaped before it reaches a page.
"""

from __future__ import annotations

import html
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from probekit.capture import Capture
from probekit.diff import diff_checkpoints
from probekit.errors import ProbekitError
from probekit.metrics import emergence, known_counts
from probekit.report import plots
from probekit.store import read_results
from probekit.views import LIBRARIES, head_view, library_source

PAGES = ("index.md", "benchmarks.md", "inside.md", "attention.md", "qkv.md")


def build_report(results: str | Path, site: str | Path = "local/site", serve: bool = False, say=print) -> Path:
    """Write the MkDocs project into `site` and build it into `site/build`; returns the built index.html."""
    results, site = Path(results), Path(site)
    if not (results / "predictions.parquet").is_file():
        raise ProbekitError(f"{results}: no predictions.parquet; run `probekit probe --out {results}` first")
    tables = read_results(results)
    docs = site / "docs"
    if docs.exists():
        shutil.rmtree(docs)
    (docs / "figures").mkdir(parents=True)
    page = Page(docs)
    overview(page, tables)
    benchmarks(page, tables)
    inside(page, tables, results)
    captures = _captures(results, tables)
    attention(page, tables, captures)
    qkv(page, tables, captures)
    (site / "mkdocs.yml").write_text(yaml.safe_dump(_mkdocs_config(page.written), sort_keys=False))
    build = site / "build"
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f",
                           str(site / "mkdocs.yml"), "-d", str(build.resolve())], capture_output=True, text=True)
    if proc.returncode:
        raise ProbekitError(f"{site / 'mkdocs.yml'}: mkdocs build --strict failed: "
                            f"{(proc.stderr or proc.stdout).strip().splitlines()[-1]}")
    say(f"site: {(build / 'index.html').resolve()}")
    if serve:
        subprocess.run([sys.executable, "-m", "mkdocs", "serve", "-f", str(site / "mkdocs.yml")])
    return build / "index.html"


def _mkdocs_config(pages: list[str]) -> dict:
    titles = {"index.md": "Overview", "benchmarks.md": "Benchmarks", "inside.md": "Logit lens & ablation",
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
        self.parts: dict[str, list[str]] = {}
        self.written: list[str] = []

    def add(self, page: str, *lines: str) -> None:
        self.parts.setdefault(page, []).extend(lines)

    def figure(self, page: str, name: str, fig, caption: str) -> None:
        for suffix in ("png", "svg"):
            fig.savefig(self.docs / "figures" / f"{name}.{suffix}", dpi=110, bbox_inches="tight")
        self.add(page, f"![{esc(caption)}](figures/{name}.png)", "",
                 f"*{esc(caption)}* — [SVG for papers](figures/{name}.svg)", "")

    def write(self, page: str) -> None:
        (self.docs / page).write_text("\n".join(self.parts.get(page, [])) + "\n", encoding="utf-8")
        self.written.append(page)


def esc(value) -> str:
    """User data as inert text in Markdown and HTML: escaped, with table pipes neutralised."""
    return html.escape(str(value)).replace("|", "&#124;").replace("[", "&#91;").replace("]", "&#93;")


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


def overview(page: Page, tables: dict) -> None:
    manifest = tables["manifest"]
    checkpoints = tables["checkpoints"]
    page.add("index.md", "# Overview", "",
             f"{len(checkpoints)} checkpoints probed with {len(tables['predictions']):,} predictions "
             f"({', '.join(esc(b) for b in manifest.get('benchmarks', {}))}).", "")
    facts = manifest.get("facts")
    if facts:
        page.add("index.md", "!!! info \"Fact injection\"",
                 f"    {len(facts['injected'])} countries' facts ({', '.join(facts['relations'])}) were written "
                 f"into the training corpus as {facts['repeats']} short biographies per country, each fact worded by "
                 f"one of its paraphrases in turn ({sum(map(len, facts['templates'].values()))} in all; "
                 f"{facts['fact_share']:.0%} of the words, seed {facts['seed']}); "
                 f"{len(facts['held_back'])} were held back as a control. Probe templates differ from the "
                 "training paraphrases.", "", *injection_details(facts))
    if "training" in tables and len(tables["training"]):
        page.add("index.md", "## Training")
        page.figure("index.md", "loss", plots.loss_curve(tables["training"]), "Training and held-out MLM loss")
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
        page.figure("benchmarks.md", f"scores-{name}", plots.score_curves(scores, name),
                    f"{name}: P@1, P@10 and MRR per relation against training step")
        rows = predictions[predictions["benchmark"] == name]
        page.figure("benchmarks.md", f"known-{name}", plots.known_facts(known_counts(rows)),
                    f"{name}: prompts answered at rank 1 and within the top 10, by fact group")
        for relation in rows["relation"].unique():
            page.add("benchmarks.md", f"### {esc(relation)}", "")
            page.figure("benchmarks.md", f"ranks-{name}-{relation}", plots.rank_heatmap(rows, name, relation),
                        f"{relation}: gold rank per prompt and checkpoint")
            page.add("benchmarks.md", *_top_predictions(rows[rows["relation"] == relation]))
        learned = known[(known["benchmark"] == name)].dropna(subset=["first_correct"])
        page.add("benchmarks.md", "### When each fact is first answered", "")
        if len(learned):
            cols = ["relation", "group", "prompt", "answer", "first_correct", "stable_top1_from"]
            page.add("benchmarks.md", *table(learned.sort_values("first_correct")[cols].head(60)))
        else:
            page.add("benchmarks.md", "No prompt is answered correctly at any checkpoint yet.", "")
    page.write("benchmarks.md")


def inside(page: Page, tables: dict, results: Path) -> None:
    """Where in depth (logit lens) and through which heads (ablation) the answers come; first vs last."""
    page.add("inside.md", "# Logit lens, head ablation, checkpoint diff", "")
    _diff_section(page, tables, results)
    if "lens" in tables:
        page.add("inside.md", "## Logit lens", "",
                 "The MLM head applied to each layer's hidden state at the [MASK]: where in depth the answer "
                 "appears, and since when in training.", "")
        for relation in tables["lens"]["relation"].unique():
            page.figure("inside.md", f"lens-{relation}", plots.logit_lens(tables["lens"], relation),
                        f"{relation}: P@1 and MRR read at each layer")
    if "ablation" in tables:
        ablation = tables["ablation"]
        last = ablation.loc[ablation["step"].idxmax(), "checkpoint"]
        page.add("inside.md", "## Head ablation", "",
                 "Each head's output zeroed in turn; all prompts rescored in one batched pass per head.", "")
        page.figure("inside.md", "ablation", plots.ablation_effects(ablation, last),
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
    folder = results / "attention"
    if not folder.is_dir():
        return []
    order = tables["checkpoints"].dropna(subset=["step"]).sort_values("step")
    return [(name, int(step), folder / f"{name}.safetensors") for name, step in zip(order["checkpoint"], order["step"])
            if (folder / f"{name}.safetensors").is_file()]


def _picked(captures: list, n: int = 3) -> list:
    return captures if len(captures) <= n else [captures[0], captures[len(captures) // 2], captures[-1]]


def attention(page: Page, tables: dict, captures: list) -> None:
    if "heads" not in tables or not captures:
        return
    heads = tables["heads"]
    page.add("attention.md", "# Attention", "",
             "Head metrics after Clark et al. (2019), averaged over the captured sentences' real tokens.", "")
    shown = [c[0] for c in _picked(captures, 4)]
    page.figure("attention.md", "heads-grid",
                plots.head_heatmaps(heads, ["attn_cls", "attn_sep", "attn_prev", "attn_self", "entropy_ratio"], shown),
                "Layer × head: attention to [CLS], to [SEP], to the previous token, to itself; entropy / uniform")
    page.figure("attention.md", "heads-change",
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
        page.figure("attention.md", f"maps-{name}", plots.attention_maps(Capture.load(path), sentence,
                                                                        f"{name} (step {step})"),
                    f"Attention of every head at {name}")
    page.write("attention.md")


def qkv(page: Page, tables: dict, captures: list) -> None:
    if "heads" not in tables or not captures:
        return
    page.add("qkv.md", "# Q/K/V", "")
    page.figure("qkv.md", "norms", plots.head_trajectories(tables["heads"], ["q_norm", "k_norm", "v_norm"]),
                "Mean L2 norm of each head's queries, keys and values over training")
    final = Capture.load(captures[-1][2])
    sentence = _interesting_sentence(final)
    for layer in range(final.n_layers):
        page.figure("qkv.md", f"qk-layer{layer}", plots.qk_scores(final, layer, sentence),
                    f"Layer {layer} at {captures[-1][0]}: Q·Kᵀ/√d scores beside the attention they become")
    page.write("qkv.md")


def _interesting_sentence(cap: Capture) -> int:
    """The first captured sentence that mentions a capital (the shipped set starts with them)."""
    for i, tokens in enumerate(cap.tokens):
        if "capital" in tokens:
            return i
    return 0


def _copy_assets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in LIBRARIES:
        (folder / f"{name}.js").write_text(library_source(name), encoding="utf-8")


__all__ = ["build_report"]
