"""A training series from what a user types: paths, quoted globs, parent folders or hub names → checkpoints in
training order (`resolve_checkpoints`), opened once as a `Series` (`open_series`).

Each entry becomes a `probekit.models.checkpoints.Checkpoint` (a folder) or a `probekit.models.hub.HubCheckpoint` (a hub name);
resolving reads nothing but what ordering needs (trainer_state.json). `load_checkpoint` is the one call from a
spec to a model and its tokenizer.
"""

from __future__ import annotations

import glob
from collections.abc import Iterator
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from probekit.models import hub
from probekit.models.checkpoints import Checkpoint
from probekit.core.errors import ProbekitError
from probekit.training.folders import looks_like_checkpoint, step_from_pattern, step_of, step_pattern


def resolve_checkpoints(specs: list[str] | str, allow_pickle: bool = False,
                        tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                        evict: bool = False, check_cached: bool = True) -> list[Checkpoint]:
    """Checkpoints from paths, quoted globs, parent folders or hub names (`ORG/NAME`, `ORG/NAME@REVISION`), in
    training order.

    Order is by step: a folder's trainer_state.json global_step, else the step its name states; a hub name's
    step, else its revision's, else its trainer_state.json (names are read alike: `step_20k`, `checkpoint-500`,
    `2M`; see `folders.step_in_name`). So checkpoint-14400 comes before checkpoint-144000; unnumbered ones keep
    their given order at the end. `step_from`, a regex whose first group is the step (k/M suffixes allowed),
    decides every checkpoint's step instead. Hub checkpoints are fetched one at a time when first read
    (`HubCheckpoint.fetch`); with `evict`, each is deleted from the hub cache when released.
    """

    specs = [specs] if isinstance(specs, (str, Path)) else list(specs)
    pattern = step_pattern(step_from)
    entries: list[str | hub.HubSpec] = []
    for spec in map(str, specs):
        path = Path(spec)
        if any(ch in spec for ch in "*?["):
            matches = [m for m in sorted(glob.glob(spec)) if looks_like_checkpoint(Path(m))]
            if not matches:
                raise ProbekitError(f"{spec}: matches no checkpoint folder")
            entries += matches
        elif path.is_file():
            if len(specs) == 1:
                raise ProbekitError(f"{spec}: a file, not a checkpoint folder")
            continue  # a shell glob also expands to files beside the checkpoints (probekit_run.json)
        elif path.is_dir() and not (path / "config.json").exists():
            children = [str(p) for p in sorted(path.iterdir()) if looks_like_checkpoint(p)]
            entries += children or [spec]
        elif path.exists():
            entries.append(spec)
        elif not hub.looks_like_path(spec):
            entries.append(hub.parse_spec(spec))
        else:
            raise ProbekitError(f"{spec}: no such checkpoint folder")
    entries = list(dict.fromkeys(entries))
    if check_cached:
        hub.check_cached([e for e in entries if isinstance(e, hub.HubSpec)])
    folders = [e for e in entries if isinstance(e, str)]
    names = dict(zip(folders, _unique_names(folders)))
    found = [hub.hub_checkpoint(e, pattern, allow_pickle, tokenizer, evict) if isinstance(e, hub.HubSpec)
             else Checkpoint(names[e], e, step_from_pattern(pattern, e) if pattern else step_of(Path(e)),
                             _run_of(e), allow_pickle, tokenizer)
             for e in entries]
    taken = [c.name for c in found]
    for ref in found:
        if isinstance(ref, hub.HubCheckpoint) and taken.count(ref.name) > 1:
            ref.name = str(ref.spec)  # two owners' repositories of one name: the full spec tells them apart
    ranked = sorted(enumerate(found), key=lambda p: (p[1].step is None, p[0] if p[1].step is None else p[1].step))
    return [ref for _, ref in ranked]


def _run_of(location: str) -> str:
    path = Path(location)
    if path.exists():
        return path.resolve().parent.name
    return location.split("/")[0] if "/" in location else ""


def _unique_names(locations: list[str]) -> list[str]:
    """Each location's folder name, with as many parent folders as it takes to tell repeated names apart."""
    parts = [Path(loc).resolve().parts if Path(loc).exists() else tuple(loc.split("/")) for loc in locations]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(p[-d:]) for p, d in zip(parts, depth)]
        clashes = {n for n in names if names.count(n) > 1}
        if not clashes:
            return names
        grown = [d + 1 if n in clashes and d < len(p) else d for n, p, d in zip(names, parts, depth)]
        if grown == depth:
            return names
        depth = grown


class Series:
    """A training series opened once: `series[-1]` by position (like a list), `series.at(600)` by step.

    Hub checkpoints in it are fetched when first read; with `evict=True` each is deleted from the hub cache
    when released (`series[i].release()`, as `probe` does after each checkpoint).
    """

    def __init__(self, specs: list[str] | str, allow_pickle: bool = False,
                 tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                 evict: bool = False):
        self.checkpoints = resolve_checkpoints(specs, allow_pickle, tokenizer, step_from=step_from, evict=evict)

    @property
    def steps(self) -> list[int | None]:
        return [c.step for c in self.checkpoints]

    def __len__(self) -> int:
        return len(self.checkpoints)

    def __iter__(self) -> Iterator[Checkpoint]:
        return iter(self.checkpoints)

    def __getitem__(self, index: int) -> Checkpoint:
        """The checkpoint at `index` in training order (negative counts from the end)."""
        return self.checkpoints[index]

    def at(self, step: int) -> Checkpoint:
        """The checkpoint written at training step `step`."""
        for checkpoint in self.checkpoints:
            if checkpoint.step == step:
                return checkpoint
        raise KeyError(f"no checkpoint at step {step}; steps: {self.steps}")

    def __repr__(self) -> str:
        return f"Series({len(self)} checkpoints, steps {self.steps})"


def open_series(specs: list[str] | str, allow_pickle: bool = False,
                tokenizer: PreTrainedTokenizerBase | None = None, *, step_from: str | None = None,
                evict: bool = False) -> Series:
    """Open a checkpoint series: paths, a glob such as 'local/my_bert/*', a parent folder, or hub names
    (`google/multiberts-seed_0-step_20k`, `ORG/NAME@REVISION`); `step_from` and `evict` as for `probe`."""
    return Series(specs, allow_pickle, tokenizer, step_from=step_from, evict=evict)


def load_checkpoint(
    ref: Checkpoint | str,
    tokenizer: PreTrainedTokenizerBase | None = None,
    allow_pickle: bool = False,
    attn_implementation: str = "eager",
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A checkpoint's model in eval mode and its tokenizer, or a ProbekitError naming what is wrong.

    Eager attention is the default here because SDPA returns no attention weights.
    """
    if not isinstance(ref, Checkpoint):
        ref = resolve_checkpoints([str(ref)], allow_pickle, tokenizer)[0]
    tok = ref.tokenizer
    return ref.model(attn_implementation=attn_implementation), tok
