"""The README's demo figures, written from a run's findings, not by hand (issue 30, item 5).

    python scripts/readme_figures.py RESULTS_DIR [--commit SHA] [--write README.md]

Reads RESULTS_DIR/findings.parquet (one row per claim, `probekit.analyses.findings`) and prints one Markdown
paragraph: per relation of the fact benchmark, P@1 injected vs held back at the last probed step with their
95% intervals (`level` rows), the difference's verdict (`difference` rows), and when injected rose above held
back (`emerged` rows: between the last probed step not cleared and the first of the lasting clearance), then
the commit the run was made from (`--commit`, else `git rev-parse HEAD` here). Every figure comes from a row;
intervals have 2 decimals, steps thousands separators. With `--write README.md` the paragraph replaces what
lies between the lines `<!-- demo-figures:start -->` and `<!-- demo-figures:end -->` (the markers stay).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

START, END = "<!-- demo-figures:start -->", "<!-- demo-figures:end -->"
FINDINGS = "findings.parquet"
BENCHMARK = "countries"
LABELS = {"capital": "capital", "capital_reverse": "capital → country", "currency": "currency",
          "language": "language", "continent": "continent"}
"""How each relation is named in the paragraph, in the paragraph's order; other relations follow, by name."""
POOLED = "all-seeds"


class FiguresError(Exception):
    """What is missing for the paragraph, in one line."""


def _interval(row) -> str:
    return f"{row['value']:.2f} [{row['low']:.2f}, {row['high']:.2f}]"


def _signed(row) -> str:
    return f"{row['value']:+.2f} [{row['low']:+.2f}, {row['high']:+.2f}]"


def _step(value) -> str:
    return f"{int(value):,}"


def _finite(value) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _joined(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def fact_rows(found, benchmark: str | None = BENCHMARK):
    """The fact claims the paragraph reads: analysis `facts`, the main line (pooled over seeds where there are
    such rows), one benchmark (`benchmark` when the table has that column and that benchmark, else its first)."""
    rows = found[found["analysis"] == "facts"]
    if "run" in rows and (rows["run"] == POOLED).any():
        rows = rows[rows["run"] == POOLED]
    elif "run" in rows and rows["run"].nunique() > 1:
        raise FiguresError(f"{FINDINGS}: fact claims of several runs ({', '.join(sorted(map(str, set(rows['run']))))}) "
                           f"and none pooled ({POOLED})")
    if "benchmark" in rows and rows["benchmark"].notna().any():
        names = list(dict.fromkeys(rows["benchmark"].dropna()))
        rows = rows[rows["benchmark"] == (benchmark if benchmark in names else names[0])]
    if rows.empty:
        raise FiguresError(f"{FINDINGS}: no fact claims (analysis 'facts')")
    return rows


def _one(rows, kind: str, relation: str, group: str):
    hit = rows[(rows["kind"] == kind) & (rows["subject"] == relation) & (rows["group"] == group)]
    if kind == "level":
        hit = hit[hit["statistic"] == "p_at_1"]
    if len(hit) != 1:
        raise FiguresError(f"{FINDINGS}: {len(hit)} rows of kind {kind!r}, subject {relation!r}, group {group!r}; "
                           f"expected one")
    return hit.iloc[0]


def relations_of(rows) -> list[str]:
    present = set(rows.loc[rows["kind"] == "level", "subject"])
    return [r for r in LABELS if r in present] + sorted(present - set(LABELS))


def _arrival(row) -> str:
    verdict = row["verdict"]
    if verdict == "emerged":
        if _finite(row.get("step_low")):
            return f"between steps {_step(row['step_low'])} and {_step(row['step'])}"
        return f"from step {_step(row['step'])}, the first probed step"
    if verdict == "transient":
        return "only transiently (not at the last probed step)"
    if verdict == "not_established":
        return "never"
    return str(verdict).replace("_", " ")


def paragraph(found, commit: str, benchmark: str | None = BENCHMARK) -> str:
    """The README's demo paragraph from a findings frame, every figure from one of its rows."""
    rows = fact_rows(found, benchmark)
    relations = relations_of(rows)
    if not relations:
        raise FiguresError(f"{FINDINGS}: no level rows of P@1 (kind 'level', statistic 'p_at_1')")
    levels, differences, arrivals = [], {}, []
    last_steps = set()
    for i, relation in enumerate(relations):
        injected, held = _one(rows, "level", relation, "injected"), _one(rows, "level", relation, "held_back")
        last_steps |= {injected["step"], held["step"]}
        text = f"{LABELS.get(relation, relation)} {_interval(injected)} vs {_interval(held)}"
        levels.append(f"**{text}**" if i == 0 else text)
        difference = _one(rows, "difference", relation, "injected-held_back")
        differences.setdefault(difference["verdict"], []).append(
            f"{LABELS.get(relation, relation)} {_signed(difference)}")
        emerged = _one(rows, "emerged", relation, "injected-held_back")
        arrivals.append(f"{LABELS.get(relation, relation)} {_arrival(emerged)}")
    steps = sorted(s for s in last_steps if _finite(s))
    at = (f"step {_step(steps[0])}" if len(steps) == 1 else
          "steps " + _joined([_step(s) for s in steps]))
    said = {"above": "above zero", "tie": "not clear of zero (a tie)", "below": "below zero",
            "too_few": "on too few prompts to judge"}
    verdicts = [f"{said.get(v, v)} for {_joined(items)}" for v, items in differences.items()]
    every = len(differences) == 1 and "above" in differences
    difference_text = ("every difference's interval above zero (" + ", ".join(differences["above"]) + ")" if every
                       else "the difference injected − held back " + "; ".join(verdicts))
    return (f"What the demo shows — the injected facts against the held-back control (last probed checkpoint, "
            f"{at}, P@1 injected vs held back, with 95% bootstrap intervals over prompts): "
            + ", ".join(levels) + f" — {difference_text}. "
            f"Injected rose above held back and stayed above (the interval of the difference clear of zero at "
            f"every later probed step): " + "; ".join(arrivals) + ". "
            f"Figures from `findings.parquet` of a run of commit `{commit}` "
            f"(`python scripts/readme_figures.py RESULTS_DIR --write README.md`).")


def inside(found, samples: int | None = None) -> str:
    """The README's second demo paragraph — where (tracing's best site per relation at the last traced step),
    syntax (heads, UUAS, probes) and which arrives first — every figure from a findings row."""
    rows = found[found["run"] == POOLED] if (found["run"] == POOLED).any() else found
    parts = []
    best = rows[(rows["kind"] == "best_site") & (rows["group"] == "injected · exact")]
    if len(best):
        last = best[best["step"] == best["step"].max()]
        shares = rows[(rows["kind"] == "share") & (rows["group"] == "injected · exact")
                      & (rows["step"] == best["step"].max())].set_index("subject")
        formed = rows[(rows["kind"] == "emerged") & (rows["analysis"] == "tracing")
                      & (rows["group"] == "injected · exact")]
        said = []
        for _, r in last.iterrows():
            text = f"{LABELS.get(r['subject'], r['subject'])}: {r['detail']}, Δp {_signed3(r)}"
            if r["verdict"] != "stands_out":
                said.append(text + " (does not stand out)")
                continue
            share = shares.loc[r["subject"]] if r["subject"] in shares.index else None
            if share is not None and share["verdict"] == "defined":
                text += f", share {_interval(share)}"
            came = formed[(formed["subject"] == r["subject"]) & (formed["detail"] == r["detail"])]
            if len(came) and came.iloc[0]["verdict"] == "emerged":
                c = came.iloc[0]
                text += (f", standing out from after step {_step(c['step_low'])}" if _finite(c["step_low"])
                         else ", standing out from the first traced step")
            said.append(text)
        steps = str(last["steps"].iloc[0]).split(",")
        draws = f"{samples} noise draws per prompt" if samples else "noise draws per prompt as the manifest says"
        parts.append(f"Where (causal tracing of the injected facts, exact patching, {draws}, sites judged at steps "
                     f"{', '.join(_step(x) for x in steps)} against the random-init model; the best site at step "
                     f"{_step(last['step'].max())}): "
                     + "; ".join(said) + ".")
    heads = rows[(rows["kind"] == "learned") & (rows["analysis"] == "syntax-heads")]
    probes = rows[(rows["kind"] == "selective") & (rows["group"] == "probe")]
    if len(heads) or len(probes):
        relations = heads[heads["subject"] != "UUAS"]
        uuas = heads[heads["subject"] == "UUAS"]
        text = (f"Syntax: {int((relations['verdict'] == 'learned').sum())} of {len(relations)} relations' best heads "
                "beat both their fixed offset and the random-init model")
        if len(uuas):
            u = uuas.iloc[0]
            text += (f"; the best head's UUAS {_interval(u)} against the adjacent-word tree's and random init's "
                     f"{u['bar']:.2f} ({str(u['verdict']).replace('_', ' ')})")
        if len(probes):
            text += "; probes selective beyond the random-init model: " + (", ".join(
                f"{r['subject']} (layer {str(r['detail']).split()[-1]}, {_signed(r)})"
                for _, r in probes[probes["verdict"] == "selective"].iterrows()) or "none")
        parts.append(text + ".")
    arrives = rows[rows["kind"] == "arrives"]
    if len(arrives):
        came = arrives[arrives["verdict"] == "arrived"].sort_values(["step_high", "step_low"])
        said = [f"{r['subject']} in ({_step(r['step_low'])}, {_step(r['step_high'])}]" if _finite(r["step_low"])
                else f"{r['subject']} by {_step(r['step_high'])}" for _, r in came.iterrows()]
        other = [f"{r['subject']} {str(r['verdict']).replace('_', ' ')}" for _, r in
                 arrives[arrives["verdict"] != "arrived"].iterrows()]
        parts.append("Which arrives first (arrival intervals on each signal's own probed steps; overlapping ones "
                     "tie): " + "; ".join(said + other) + ".")
    return " ".join(parts)


def _signed3(row) -> str:
    return f"{row['value']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}]"


def replaced(text: str, block: str) -> str:
    """`text` with what lies between the marker lines replaced by `block` (the markers kept)."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise FiguresError(f"expected one {START} line followed by one {END} line")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{block}\n{END}{tail}"


def head_commit(where: Path) -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise FiguresError(f"no --commit given and `git rev-parse HEAD` failed in {where} ({exc})") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a results folder holding findings.parquet")
    parser.add_argument("--commit", help="the commit the run was made from (default: git rev-parse HEAD here)")
    parser.add_argument("--benchmark", default=BENCHMARK, help=f"the fact benchmark (default: {BENCHMARK})")
    parser.add_argument("--write", type=Path, metavar="README", help=f"replace the block between {START} and {END}")
    args = parser.parse_args(argv)
    import pandas as pd

    try:
        path = args.results / FINDINGS
        if not path.is_file():
            raise FiguresError(f"{path}: no such file (probe with a probekit that writes findings)")
        found = pd.read_parquet(path)
        text = paragraph(found, args.commit or head_commit(Path.cwd()), args.benchmark)
        manifest = args.results / "manifest.json"
        samples = (json.loads(manifest.read_text()).get("tracing") or {}).get("noise_samples") \
            if manifest.is_file() else None
        if more := inside(found, samples):
            text += "\n\n" + more
        print(text)
        if args.write:
            args.write.write_text(replaced(args.write.read_text(encoding="utf-8"), text), encoding="utf-8")
            print(f"wrote {args.write}", file=sys.stderr)
    except (FiguresError, OSError) as exc:
        print(f"readme_figures: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
