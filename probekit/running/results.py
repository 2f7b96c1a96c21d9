"""`ProbeResult`: the tables of one probing run, in memory or in a results folder, with the same methods."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from probekit.core.schema import CONTROL, POOLED, TABLES
from probekit.core.store import read_run, write_run, writer_lock


class ProbeResult:
    """The tidy tables of one run (see `probekit.core.schema`) and its manifest.

    `result.predictions`, `.scores`, `.checkpoints` always exist; `.heads`, `.lens`, `.ablation`,
    `.training` are None unless that analysis ran; any other analysis's table is in `result.tables`.
    """

    def __init__(self, tables: dict[str, pd.DataFrame], manifest: dict):
        from probekit.analyses import load_builtins

        load_builtins()  # every registered analysis's tables are in the format
        self.tables = {name: TABLES[name].conform(frame) if name in TABLES else frame
                       for name, frame in tables.items() if frame is not None}
        self.manifest = manifest

    predictions = property(lambda self: self.tables["predictions"])
    scores = property(lambda self: self.tables["scores"])
    checkpoints = property(lambda self: self.tables["checkpoints"])
    heads = property(lambda self: self.tables.get("heads"))
    lens = property(lambda self: self.tables.get("lens"))
    ablation = property(lambda self: self.tables.get("ablation"))
    training = property(lambda self: self.tables.get("training"))

    @property
    def findings(self) -> pd.DataFrame:
        """Every claim of the run (`probekit.analyses.findings`): the table the probe wrote, else built now from
        the tables (results written before the findings existed)."""
        if "findings" not in self.tables:
            from probekit.analyses.findings import build

            self.tables["findings"] = build(self.tables)
        return self.tables["findings"]

    def __repr__(self) -> str:
        sizes = ", ".join(f"{name} {len(frame):,}" for name, frame in self.tables.items())
        return f"ProbeResult({sizes})"

    @property
    def skipped(self) -> pd.DataFrame:
        return self.checkpoints[self.checkpoints["status"] == "skipped"]

    @property
    def files(self) -> dict[str, str]:
        """checkpoint → its capture file under the results folder (when attention was captured there)."""
        return dict(self.manifest.get("captures", {}))

    def summary(self, metric: str = "p_at_1", intervals: bool = False) -> pd.DataFrame:
        """`metric` per checkpoint (rows, in training order) × relation (columns; by fact group if injected).

        With `intervals`, each cell is text, the value and its 95% bootstrap interval: `0.56 [0.48, 0.64]`
        (for p_at_1, p_at_10 and mrr). With several seeds, the rows are the steps pooled over the seeds
        (`all-seeds/step-N`, intervals over seeds and prompts); each seed's own rows are in `scores`.
        """
        scores = self.scores
        if (scores["run"] == POOLED).any():
            scores = scores[(scores["run"] == POOLED) | (scores["checkpoint"] == CONTROL)]
        columns = ["group", "relation"] if scores["group"].nunique() > 1 else ["relation"]
        values = scores[metric]
        if intervals:
            if f"{metric}_low" not in scores:
                raise ValueError(f"no intervals for {metric!r}; they are kept for p_at_1, p_at_10 and mrr")
            values = pd.Series([f"{v:.2f} [{low:.2f}, {high:.2f}]" if pd.notna(v) else "–" for v, low, high in
                                zip(values, scores[f"{metric}_low"], scores[f"{metric}_high"])], index=scores.index)
        table = scores.assign(_value=values).set_index(["step", "checkpoint", *columns])["_value"].unstack(columns)
        # checkpoints without a step are kept, last
        return table.sort_index(level="step", na_position="last", sort_remaining=False)

    def save(self, out: str | Path) -> Path:
        """Write the tables into `out` as one run (replacing any earlier run there); returns `out`."""
        out = Path(out)
        present = {name: file for name, file in self.files.items() if (out / file).is_file()}
        self.manifest = {**self.manifest, "captures": present}
        with writer_lock(out):
            write_run(out, self.tables, self.manifest, keep=sorted(set(present.values())))
        return out

    @classmethod
    def load(cls, out: str | Path) -> "ProbeResult":
        """The run written into `out` (by `probekit probe` or `save`), refused if incomplete or of another format."""
        tables, manifest = read_run(Path(out))
        return cls(tables, manifest)


def load_results(out: str | Path) -> ProbeResult:
    """The results folder `out` as a ProbeResult (the same object `probe()` returned)."""
    return ProbeResult.load(out)
