"""The `probekit` command line: one thin command per verb over the library API."""

from __future__ import annotations

import functools
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from probekit import DISTRIBUTION
from probekit.core.errors import ProbekitError
from probekit.training.presets import LIMITS, PRESETS

SHIPPED_SENTENCES = "shipped"  # what a bare --capture stands for: the sentence set shipped with probekit


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn ProbekitError, and OSError with the path it concerns, into click's one-line error and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except BrokenPipeError:  # the reader left (`| head`): nothing more to say, and no error either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except ProbekitError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            raise click.ClickException(os_error_line(exc)) from exc
        except Exception as exc:  # a bug, not bad input: still one line; PROBEKIT_TRACEBACK=1 shows where
            if os.environ.get(TRACEBACK_ENV, "") not in ("", "0"):
                raise
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise click.ClickException(f"{exc.__class__.__name__}: {first} (an unexpected error inside probekit; "
                                       f"{TRACEBACK_ENV}=1 shows where)") from exc

    return wrapper


TRACEBACK_ENV = "PROBEKIT_TRACEBACK"


class FiniteFloat(click.FloatRange):
    """A float within its bounds that is also a number: NaN and ±inf are refused with the message a value
    out of range gets (NaN compares false with every bound, so click's own range check lets it through)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            if self.min is None and self.max is None:
                self.fail(f"{number} is not a finite number.", param, ctx)
            self.fail(f"{number} is not in the range {self._describe_range()}.", param, ctx)
        return number


def examples(*lines: str) -> str:
    """A command's epilog: two or three example command lines, printed as they are."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def os_error_line(exc: OSError) -> str:
    """`PATH: reason` (both paths for a rename or copy); the bare message when the error names no path."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True},
             epilog=examples("probekit demo", "probekit train -o local/my_bert",
                             "probekit probe local/my_bert/* --out local/probe && probekit report local/probe"))
@click.version_option(package_name=DISTRIBUTION, prog_name="probekit")
def main() -> None:
    """probekit: pretrain a tiny BERT, probe every checkpoint, look at its attention."""
    from probekit.core.log import set_progress, show_messages

    show_messages()
    quiet_libraries()
    if not _terminal() and os.environ.get("PROBEKIT_PROGRESS") is None:
        set_progress(False)  # a log file gets a line per stage, not the frames of progress bars
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def _terminal() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stdout
        return False


def quiet_libraries() -> None:
    """No raw warnings of the libraries underneath reach the user: probekit says what matters in its own
    lines. `python -W …` or PYTHONWARNINGS (a developer asking for them) keeps them."""
    import warnings

    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


def _limit(field: str) -> click.IntRange:
    """The recipe's own bounds for an integer option (`probekit.training.presets.LIMITS`), checked before any work."""
    low, high = LIMITS[field]
    return click.IntRange(int(low), int(high))


def seed_list(ctx: click.Context, param: click.Parameter, value: str | None) -> list[int] | None:
    """`0,1,2` → [0, 1, 2], each within the recipe's seed bounds."""
    if value is None:
        return None
    low, high = LIMITS["seed"]
    try:
        seeds = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r}: expected seeds like 0,1,2") from None
    if not seeds or any(not low <= s <= high for s in seeds) or len(set(seeds)) != len(seeds):
        raise click.BadParameter(f"{value!r}: expected distinct seeds from {int(low)} to {int(high):,}, like 0,1,2")
    return seeds


@main.command(epilog=examples("probekit train -o local/my_bert",
                              "probekit train --preset seed --max-steps 2000 -o local/seed_bert",
                              "probekit train --seeds 0,1,2 --corpus wiki-leads+facts:0.7 -o local/seeds"))
@click.option("--preset", type=click.Choice(sorted(PRESETS)), default="default",
              help="Recipe: 'seed' = the course notebook exactly, 'default' = the same model trained well.")
@click.option("--output", "-o", default="local/my_bert", help="Folder for checkpoint-N/ subfolders.")
@click.option("--corpus", default=None,
              help="'wiki-leads' (the embedded Wikipedia leads), a .txt/.jsonl/.json file or folder, or a HF "
                   "dataset NAME[:CONFIG] such as wikitext:wikitext-2-raw-v1; append +facts[:SHARE] to inject "
                   "country facts with a held-back control.  [default: wiki-leads+facts]")
@click.option("--tokenizer", default=None,
              help="Hub name, tokenizer folder, vocab.txt, or wordpiece:N (a vocabulary of N built from the "
                   "corpus).  [default: bert-base-uncased]")
@click.option("--nsp", is_flag=True, default=False, help="Train MLM + next-sentence prediction (BertForPreTraining).")
@click.option("--max-steps", type=_limit("max_steps"), default=None,
              help="Stop after this many optimiser steps (overrides --epochs).")
@click.option("--epochs", type=FiniteFloat(0, LIMITS["epochs"][1], min_open=True), default=None,
              help="Passes over the corpus.")
@click.option("--batch-size", type=_limit("batch_size"), default=None, help="Examples per device per step.")
@click.option("--lr", type=FiniteFloat(0, LIMITS["lr"][1], min_open=True), default=None,
              help="Peak learning rate.")
@click.option("--seed", type=_limit("seed"), default=None, help="Random seed (initialisation, masking, order).")
@click.option("--seeds", callback=seed_list, default=None,
              help="Several seeds, e.g. 0,1,2: one run each into OUTPUT/seed-K/ (same corpus, facts and tokenizer).")
@click.option("--data-seed", type=_limit("data_seed"), default=None,
              help="Seed of the corpus split and the fact injection (shared by --seeds).  [default: 0]")
@click.option("--hidden-size", type=_limit("hidden_size"), default=None, help="Model width.")
@click.option("--layers", "num_layers", type=_limit("num_layers"), default=None, help="Transformer layers.")
@click.option("--heads", "num_heads", type=_limit("num_heads"), default=None, help="Attention heads per layer.")
@click.option("--intermediate-size", type=_limit("intermediate_size"), default=None, help="Feed-forward width.")
@click.option("--block-size", type=_limit("block_size"), default=None, help="Tokens per training example.")
@click.option("--mlm-probability", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=None,
              help="Share of tokens masked for MLM (presets: 0.15; demo 0.4).")
@click.option("--save-every", type=_limit("save_every"), default=None,
              help="Checkpoint every N steps after the log-spaced early ones (1, 2, 4, …).")
@click.option("--log-until", type=_limit("log_until"), default=None, help="Last log-spaced checkpoint step.")
@one_line_errors
def train(preset, output, corpus, tokenizer, nsp, seeds, **overrides):
    """Pretrain the tiny BERT and write OUTPUT/checkpoint-N/ (rerun to resume); with --seeds, OUTPUT/seed-K/."""
    from probekit.training.presets import get_preset
    from probekit.training.trainer import train as run_training, train_seeds

    if nsp:
        overrides["nsp"] = True
    if overrides.get("max_steps") is None and overrides.get("epochs") is not None:
        overrides["max_steps"] = -1
    if seeds and overrides.get("seed") is not None:
        raise click.UsageError("give --seed or --seeds, not both")
    recipe = get_preset(preset, **overrides)
    if seeds:
        train_seeds(output, recipe, seeds, corpus=corpus, tokenizer=tokenizer)
    else:
        run_training(output, recipe, corpus=corpus, tokenizer=tokenizer)
    _end_distributed()


def _end_distributed() -> None:
    """Under torchrun, leave the process group together; exiting with it alive can abort a rank."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class BatchSize(click.ParamType):
    """A whole number of at least 1, or 'auto'."""

    name = "N|auto"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str:
        if value == "auto" or (isinstance(value, int) and value >= 1):
            return value
        try:
            number = int(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is neither a whole number nor auto", param, ctx)
        if number < 1:
            self.fail(f"{number} is not in the range x>=1 (or auto)", param, ctx)
        return number


def analysis_list(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """`--with lens,ablation` → ("lens", "ablation"), each checked against the registered analyses."""
    if not value:
        return ()
    from probekit import analyses

    names = tuple(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    try:
        analyses.get(names)
    except ProbekitError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
    return names


def _option_flags() -> list[tuple[click.Option, str, str]]:
    """A click option for every option field of every registered analysis: (option, analysis, field)."""
    import dataclasses

    from probekit.analyses import load_builtins

    made = []
    for analysis in load_builtins().values():
        for f in dataclasses.fields(analysis.options):
            meta = f.metadata
            flag = meta.get("flag") or f"--{analysis.name}-{f.name}".replace("_", "-")
            dest = f"option__{analysis.name}__{f.name}".replace("-", "_")
            shown = f"  [{analysis.name}; default: {f.default}]"
            if f.type in (bool, "bool"):
                spelled = flag if not f.default else f"{flag}/--no-{flag[2:]}"
                option = click.Option([spelled, dest], is_flag=True, default=None, help=meta["help"] + shown)
            else:
                option = click.Option([flag, dest], type=_click_type(f), default=None, help=meta["help"] + shown,
                                      show_default=False)
            made.append((option, analysis.name, f.name))
    return made


def _click_type(f) -> click.ParamType:
    """The click type of an option field: its choices, its bounds, or its Python type."""
    meta = f.metadata
    if meta.get("choices"):
        return click.Choice([str(c) for c in meta["choices"]])
    kind = {"int": int, "float": float}.get(f.type, f.type) if isinstance(f.type, str) else f.type
    if kind is int:
        return click.IntRange(meta.get("low"), meta.get("high"))
    if kind is float:
        return FiniteFloat(meta.get("low"), meta.get("high"))
    return click.STRING


def analysis_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add every registered analysis's options to a click command; the command receives them as
    `options={analysis: {field: value}}` (only those given)."""
    made = _option_flags()

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given: dict[str, dict] = {}
        for option, analysis, name in made:
            value = kwargs.pop(option.name)
            if value is not None:
                given.setdefault(analysis, {})[name] = value
        return command(*args, options=given, **kwargs)

    wrapper.__click_params__ = [*getattr(command, "__click_params__", []), *(o for o, _, _ in reversed(made))]
    return wrapper


def _analyses_epilog() -> str:
    from probekit.analyses import load_builtins

    lines = [f"  {name:<12} {analysis.help}" for name, analysis in load_builtins().items()]
    return ("\b\nAnalyses (--with NAME; their options are the flags above marked with the name):\n" + "\n".join(lines)
            + "\n\n" + examples("probekit probe local/my_bert/* --out local/probe",
                                 "probekit probe local/my_bert/* --with lens,ablation --at ablation=0,2000,last",
                                 "probekit probe local/my_bert/* -b ewt --with syntax-heads,probes -o local/syntax"))


def _steps_at(values: tuple[str, ...]) -> dict[str, str]:
    """--at NAME=STEPS options as {name: steps}."""
    found = {}
    for value in values:
        name, sep, steps = value.partition("=")
        if not sep or not name.strip() or not steps.strip():
            raise click.BadParameter(f"{value!r} is not NAME=STEPS (e.g. ablation=0,2000,8000)", param_hint="--at")
        name = name.strip()
        found[name] = f"{found[name]},{steps.strip()}" if name in found else steps.strip()
    return found


@main.command(epilog=_analyses_epilog())
@click.argument("paths", nargs=-1, metavar="[CHECKPOINT]...")
@click.option("--checkpoints", "-c", multiple=True,
              help="Checkpoint folders, a quoted glob ('local/my_bert/*'), a parent folder, or hub names. "
                   "Also taken as plain arguments, so an unquoted shell glob works.")
@click.option("--benchmark", "-b", "benchmarks", multiple=True, default=["countries"],
              help="Shipped benchmark name or a .csv/.jsonl/.yaml file; repeat for several. Minimal pairs: "
                   "blimp, blimp:PARADIGM|PHENOMENON|FIELD (e.g. blimp:island_effects), or a .csv/.jsonl file "
                   "with good, bad columns (OUT/pairs.parquet, OUT/pair_accuracy.parquet). Choices: "
                   "choice:blimp, choice:blimp:SELECTOR or choice:PAIRS.csv — one-word minimal pairs as prompts "
                   "with a foil (OUT/choices.parquet, OUT/choice_accuracy.parquet). Any input kind a registered "
                   "analysis reads (sentences:FILE, ewt, …). SPEC@N samples that input to N items per group "
                   "(blimp@4, ewt:dev+test@300), whatever --sample says.")
@click.option("--sample", type=click.IntRange(min=1), default=None,
              help="Score at most N pairs per paradigm of the minimal-pair benchmarks (seeded: the same N each "
                   "run); all of BLiMP is 134,000 sentences per checkpoint.")
@click.option("--out", "-o", default="local/probe", help="Results folder (tables, manifest, cache).")
@click.option("--with", "with_", metavar="A,B", callback=analysis_list, default=None,
              help="Analyses to run beside the predictions, comma-separated (listed below).")
@click.option("--tokenizer", default=None, help="Tokenizer to use instead of each checkpoint's own.")
@click.option("--allow-pickle", is_flag=True, help="Also load pytorch_model.bin (pickle) weights, weights-only.")
@click.option("--step-from", metavar="REGEX", default=None,
              help="Read each checkpoint's step from its name or hub spec with REGEX's first group (k/M "
                   "suffixes: 20k = 20000), e.g. 'step_(\\d+k)'.  [default: the name (step_20k, checkpoint-500), "
                   "the hub revision, else trainer_state.json]")
@click.option("--evict", is_flag=True,
              help="Delete each hub checkpoint from the hub cache once it is probed, so a long series fits "
                   "the disk (local folders are never deleted).")
@click.option("--batch-size", type=BatchSize(), default="128",
              help="Prompts per forward pass, or 'auto': the largest that fits (on a GPU from 1024, halved on "
                   "running out of memory; on a CPU 128).")
@click.option("--control/--no-control", default=True,
              help="Add a random-initialisation row when the series has no step 0.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 …  [default: cuda if available]")
@click.option("--capture", "capture_file", is_flag=False, flag_value=SHIPPED_SENTENCES, default=None,
              metavar="[FILE]",
              help="Same as --with capture; with FILE, the same as --sentences FILE too.")
@click.option("--lens", is_flag=True, help="Same as --with lens.")
@click.option("--ablate", is_flag=True, help="Same as --with ablation.")
@click.option("--at", "at", metavar="NAME=STEPS", multiple=True, callback=lambda ctx, param, value: _steps_at(value),
              help="Run analysis NAME only at these steps (comma-separated numbers, first, last), e.g. "
                   "--at ablation=0,2000,8000 --at tracing=last; repeat for several. The others, and the "
                   "random-init control, run at every checkpoint.")
@click.option("--shard", metavar="I/N", default=None,
              help="Compute only shard I of N (0 to N-1) into the shared OUT and exit; the last shard to finish "
                   "(or --merge) writes the tables. For jobs without torchrun, e.g. a Slurm array.")
@click.option("--merge", is_flag=True,
              help="Write the tables from the shards' units in OUT (the same command as the shards, without "
                   "--shard); names the missing units if a shard has not finished.")
@analysis_options
@one_line_errors
def probe(paths: tuple[str, ...], checkpoints: tuple[str, ...], benchmarks: tuple[str, ...], sample: int | None,
          out: str, with_: tuple[str, ...], tokenizer: str | None, allow_pickle: bool, batch_size: int,
          control: bool, device: str | None, capture_file: str | None, lens: bool, ablate: bool,
          options: dict[str, dict], shard: str | None = None, merge: bool = False, step_from: str | None = None,
          evict: bool = False, at: dict[str, str] | None = None) -> None:
    """Score every benchmark prompt on every checkpoint; write tidy tables to OUT.

    Exits with status 1 when a checkpoint was skipped (after writing the results of the others).
    Under `torchrun --nproc_per_node N -m probekit probe …` the checkpoints' units are shared out over the N
    processes (one GPU each) and rank 0 writes the tables, the same as one process would.
    """
    from probekit.running.runner import probe as run_probe

    specs = [*checkpoints, *paths]
    if not specs:
        raise click.UsageError("give checkpoints: probekit probe --checkpoints local/my_bert/*")
    flagged = [name for name, on in (("lens", lens), ("ablation", ablate), ("capture", capture_file)) if on]
    analyses = tuple(dict.fromkeys(["predictions", *with_, *flagged]))
    if capture_file not in (None, SHIPPED_SENTENCES):
        options.setdefault("capture", {})["sentences"] = capture_file
    result = run_probe(specs, benchmarks, analyses=analyses, out=out, tokenizer=tokenizer,
                       allow_pickle=allow_pickle, batch_size=batch_size, control=control, device=device,
                       sample=sample, step_from=step_from, evict=evict, shard=shard, merge=merge, options=options,
                       at=at)
    if result is None:  # a rank or shard that leaves the tables to another process
        return
    if len(result.predictions):  # none when only minimal pairs were scored
        click.echo("\nP@1 [95% bootstrap interval] by checkpoint and relation:")
        click.echo(result.summary(intervals=True).to_string())
    if (accuracy := result.tables.get("pair_accuracy")) is not None and len(accuracy):
        overall = accuracy[accuracy["level"] == "all"]
        metric = result.manifest["options"]["pairs"]["metric"]
        click.echo(f"\nMinimal-pair accuracy ({metric}) by checkpoint and benchmark:")
        click.echo(overall.pivot_table(index=["step", "checkpoint"], columns="benchmark", values="accuracy",
                                       sort=False).to_string(float_format=lambda v: f"{v:.3f}"))
    counts, empty = computed(result)
    click.echo(f"\n{'; '.join(counts) or 'nothing computed'} from {len(result.checkpoints)} checkpoint(s) -> {out}/")
    # what the user asked for beyond the predictions; without --with, whatever the inputs called for
    asked = [name for name in analyses if name != "predictions"] or result.manifest.get("analyses", ["predictions"])
    if failed := result.manifest.get("failed_analyses"):
        click.echo(f"{', '.join(failed)}: not written (see the error above); the other tables are", err=True)
    why = result.manifest.get("computed_nothing", {})
    nothing = [name for name in asked if name in empty or name in why]
    if nothing and len(nothing) == len(asked):  # every analysis asked for: one line each saying why, exit 1
        click.echo("Error: " + "; ".join(f"{name} computed nothing: {why.get(name, 'its table is empty')}"
                                         for name in nothing), err=True)
        sys.exit(1)
    if len(result.skipped):
        click.echo(f"{len(result.skipped)} checkpoint(s) skipped: see {out}/checkpoints.parquet "
                   f"(column error) or the lines above", err=True)
        sys.exit(1)
    if failed:
        sys.exit(1)


UNITS = {"predictions": "predictions", "pairs": "minimal pairs scored", "choice": "choices",
         "tracing": "tracing rows", "syntax-heads": "syntax-head rows", "probes": "probe rows", "lens": "lens rows",
         "ablation": "ablation rows", "capture": "head-metric rows"}
"""How the closing line of `probe` names each analysis's row table."""


def computed(result) -> tuple[list[str], list[str]]:
    """(what the run computed, one phrase per analysis from its row table's count; the analyses whose row
    table is empty). Traced prompts and treebank sentences are counted beside their rows."""
    from probekit.analyses import REGISTRY

    phrases, empty = [], []
    for name in result.manifest.get("analyses", ["predictions"]):
        spec = REGISTRY.get(name)
        table = getattr(getattr(spec, "table", None), "name", name.replace("-", "_"))
        frame = result.tables.get(table)
        rows = len(frame) if frame is not None else 0
        if not rows:
            empty.append(name)
            if name == "predictions" and spec is not None and len(result.manifest.get("analyses", [])) > 1:
                continue  # a run of other inputs (a treebank, minimal pairs alone): no prompts were asked for
        phrase = f"{rows:,} {UNITS.get(name, f'{table} rows')}"
        if rows and name == "tracing" and "prompt" in frame.columns:
            traced = frame[frame["component"] != "skipped"] if "component" in frame.columns else frame
            phrase += f" ({traced['prompt'].nunique():,} prompts traced)"
        if rows and getattr(spec, "inputs", None) == "treebank":
            sentences = sum(int(i.get("count", 0)) for i in result.manifest.get("inputs", {}).get("treebank", {}).values())
            phrase += f" on {sentences:,} sentences"
        phrases.append(phrase)
    return phrases, empty


@main.command(epilog=examples("probekit report local/probe --site local/site",
                              "probekit report local/probe --site local/site --serve --port 8001"))
@click.argument("results", default="local/probe")
@click.option("--site", default="local/site", help="Folder for the MkDocs project; the built site goes to SITE/build.")
@click.option("--serve", is_flag=True, help="Serve the site on 127.0.0.1 after building it (stops with probekit).")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, help="Port for --serve.")
@one_line_errors
def report(results, site, serve, port):
    """Build a MkDocs site of a RESULTS folder written by `probekit probe` (no models needed)."""
    from probekit.report import build_report

    index = build_report(results, site, serve=serve, port=port)
    click.echo(str(index.resolve()))


@main.command(epilog=examples("probekit diff local/probe", "probekit diff local/probe 3000",
                              "probekit diff local/probe checkpoint-0 -1 --csv d.csv"),
              context_settings={"ignore_unknown_options": True})  # -1 (the last checkpoint) is a position
@click.argument("results")
@click.argument("a", required=False)
@click.argument("b", required=False)
@click.option("--csv", "csv_file", default=None, metavar="FILE",
              help="Also write the table shown (changed prompts, or the neighbour summary) to FILE as CSV.")
@click.option("--rows", type=click.IntRange(min=1), default=15, help="Changed prompts printed.")
@one_line_errors
def diff(results, a, b, csv_file, rows):
    """Compare checkpoints of a probed RESULTS folder: prompts newly right or lost, heads, weights.

    A and B are names, steps (3000) or positions (-1 = the last). With A only, A is compared with the
    checkpoint before it; with neither, every pair of neighbouring checkpoints is summarised.
    """
    from probekit.diff import diff_checkpoints, neighbours

    if a is None:
        summary = neighbours(results)
        click.echo("prompts newly right (+) and lost (-) between neighbouring checkpoints:")
        click.echo(summary.to_string(index=False))
        if csv_file:
            summary.to_csv(csv_file, index=False)
        return
    d = diff_checkpoints(results, a, b)
    right, lost = int(d.summary["newly_right"].sum()), int(d.summary["lost"].sum())
    unscorable = int(d.summary["unscorable"].sum()) if "unscorable" in d.summary else 0
    click.echo(f"{d.a} -> {d.b}: +{right} newly right / -{lost} lost"
               + (f" ({unscorable} unscorable on either side, counted apart)" if unscorable else "")
               + f"; {int(d.summary['top1_changed'].sum())} prompts changed their top-1 answer")
    if len(d.summary):
        click.echo(d.summary.to_string(index=False))
    if len(d.changed_prompts):
        click.echo(f"\nlargest moves of the gold rank (first {rows}):")
        click.echo(d.changed_prompts.head(rows).to_string(index=False))
    if len(d.heads):
        click.echo("\nheads whose attention changed most (Jensen–Shannon, bits):")
        click.echo(d.heads.head(8).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if len(d.weights):
        click.echo("\nweight distance per block:")
        click.echo(d.weights.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if csv_file:
        d.changed_prompts.to_csv(csv_file, index=False)


@main.command(epilog=examples("probekit demo", "probekit demo --verbose",
                              "probekit demo --out local/demo-small --max-steps 500"))
@click.option("--out", default="local/demo", help="Folder for the checkpoints and everything made from them.")
@click.option("--max-steps", type=int, default=None,
              help="Training steps.  [default: 5000 on CPU, 40000 on a GPU]")
@click.option("--corpus", default="wiki-leads+facts:0.7", help="As for `probekit train`.")
@click.option("--verbose", is_flag=True, help="Also print P@1 of every checkpoint × relation (a wide table).")
@one_line_errors
def demo(out, max_steps, corpus, verbose):
    """The whole job offline: train on the embedded corpus, probe every checkpoint, build the site."""
    from probekit.demo import demo as run_demo, summary

    result = run_demo(out, max_steps=max_steps, corpus=corpus)
    if result.probing is None:  # a torchrun rank other than the first
        return
    if verbose:
        click.echo("\nP@1 [95% bootstrap interval] by checkpoint and relation:")
        click.echo(result.probing.summary(intervals=True).to_string())
    click.echo("")
    click.echo("\n".join(summary(result.probing)))
    click.echo(f"\nThe report: {result.site.resolve()}")


if __name__ == "__main__":
    sys.exit(main())
