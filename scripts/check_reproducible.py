"""Are two results folders the same to the digit? Compares them table by table as canonical CSV.

    python scripts/check_reproducible.py A B [--show N]

A and B are results folders (`probekit probe … --out A`, the demo's `local/demo/probe`). Every Parquet table
in either is read and written as canonical CSV: columns sorted by name, each float as Python's repr (the
shortest text that reads back as the same double, so two values print alike only when their bits are equal),
NaN as `nan`, missing as an empty field, lists and arrays as JSON of the same, and the rows sorted. The
manifest is compared the same way, flattened to one `key path, value` row per leaf, without what differs
between two runs of one command by design: `run_id`, `created`, `command`, and the folder's own path
wherever it appears. Other files a manifest lists are compared by content: a safetensors file (an attention
capture) by its metadata and each tensor's dtype, shape and bytes, any other by SHA-256. (Not safetensors
files by their bytes: safetensors 0.8 writes the header's metadata in a per-process random order, so two
identical captures from `probekit/models/activations.py` `Capture.save` differ in their bytes.)

Every difference is printed, one line each (a cell that differs names its table, its row's key — the
columns that are not floats — the column and both values); the exit status is 1 when there is any, 0 when
the folders agree. Use it to check that probing the same checkpoints twice from the same commit on the same
machine gives identical tables (issue 30, item 5).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
from collections import Counter
from pathlib import Path

VOLATILE = ("run_id", "created", "command")
"""Manifest keys that differ between two runs of one command by design (an id, a time, the argv)."""
MANIFEST = "manifest.json"


def cell(value) -> str:
    """One value as canonical text: floats by repr (exact), containers as JSON of canonical cells."""
    import numpy as np

    if value is None:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return json.dumps([cell(v) for v in value], ensure_ascii=False)
    if isinstance(value, dict):
        return json.dumps({str(k): cell(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))},
                          ensure_ascii=False)
    if isinstance(value, bytes):
        return value.hex()
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return ""
    except ImportError:  # pragma: no cover - pandas is a dependency of probekit
        pass
    return str(value)


def canonical_rows(frame) -> tuple[list[str], list[tuple[str, ...]]]:
    """(sorted column names, rows as tuples of canonical cells, sorted)."""
    columns = sorted(map(str, frame.columns))
    frame = frame.set_axis(list(map(str, frame.columns)), axis=1)
    rows = [tuple(cell(v) for v in values) for values in zip(*(frame[c].tolist() for c in columns))]
    return columns, sorted(rows)


def canonical_csv(frame) -> str:
    """`frame` as canonical CSV text: the same text for two frames exactly when they hold the same values."""
    columns, rows = canonical_rows(frame)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return text.getvalue()


def _flatten(value, path: str = ""):
    if isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _flatten(value[key], f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def manifest_frame(folder: Path):
    """The manifest as a (key, value) table, without the volatile keys and with the folder's path masked."""
    import pandas as pd

    path = folder / MANIFEST
    if not path.is_file():
        return None
    manifest = json.loads(path.read_text())
    manifest = {k: v for k, v in manifest.items() if k not in VOLATILE} if isinstance(manifest, dict) else manifest
    spellings = sorted({str(folder), str(folder.resolve()), str(folder.absolute())}, key=len, reverse=True)

    def masked(value):
        if isinstance(value, str):
            for spelling in spellings:
                value = value.replace(spelling, "<RESULTS>")
        return value

    rows = [(key, masked(value)) for key, value in _flatten(manifest)]
    return pd.DataFrame(rows, columns=["key", "value"]).astype({"value": object})


def read_tables(folder: Path) -> dict:
    """Every table of a results folder (its Parquet files, by stem) and its manifest (as `manifest.json`)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"{folder}: not a folder")
    tables = {p.stem: pq.read_table(p).to_pandas() for p in sorted(folder.glob("*.parquet"))}
    if (manifest := manifest_frame(folder)) is not None:
        tables[MANIFEST] = manifest
    return tables


def content_digest(path: Path) -> str:
    """SHA-256 of a file's content: for safetensors, of its sorted metadata and its tensors (name, dtype, shape,
    bytes), whatever order the header lists them in; else of its bytes."""
    digest = hashlib.sha256()
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "np") as f:
            digest.update(json.dumps(f.metadata() or {}, sort_keys=True).encode())
            for name in sorted(f.keys()):
                array = f.get_tensor(name)
                digest.update(f"{name}|{array.dtype}|{array.shape}".encode())
                digest.update(array.tobytes())
    else:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def other_files(folder: Path) -> dict[str, str]:
    """Content digests of the non-table files the manifest lists (attention captures)."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    listed = (json.loads(path.read_text()).get("files") or {}).get("other") or []
    return {name: content_digest(Path(folder) / name) if (Path(folder) / name).is_file() else "missing"
            for name in listed}


def table_differences(name: str, a, b, keys: list[str] | None = None) -> list[str]:
    """Each difference between two frames of one table, one line each; rows that differ are paired by `keys`
    (default: the columns that hold no floats) to name the cells that differ."""
    columns_a, rows_a = canonical_rows(a)
    columns_b, rows_b = canonical_rows(b)
    if columns_a != columns_b:
        only_a, only_b = sorted(set(columns_a) - set(columns_b)), sorted(set(columns_b) - set(columns_a))
        lines = [f"{name}: columns differ (only in A: {', '.join(only_a) or '-'}; "
                 f"only in B: {', '.join(only_b) or '-'})"]
        common = [c for c in columns_a if c in set(columns_b)]
        return lines + table_differences(name, a[common], b[common], keys) if common else lines
    lines = []
    if len(rows_a) != len(rows_b):
        lines.append(f"{name}: {len(rows_a):,} rows in A, {len(rows_b):,} in B")
    count_a, count_b = Counter(rows_a), Counter(rows_b)
    missing_b = sorted((count_a - count_b).elements())
    missing_a = sorted((count_b - count_a).elements())
    if not missing_a and not missing_b:
        return lines
    # pair the differing rows by their key: the columns that hold no floats
    floats = {c for c in columns_a if a[c].dtype.kind == "f" or b[c].dtype.kind == "f"}
    key_at = [i for i, c in enumerate(columns_a) if (c in keys if keys else c not in floats)]
    key = lambda row: tuple(row[i] for i in key_at)  # noqa: E731
    by_key_b: dict[tuple, list] = {}
    for row in missing_a:
        by_key_b.setdefault(key(row), []).append(row)
    for row in missing_b:
        partners = by_key_b.get(key(row))
        if not partners:
            lines.append(f"{name}: only in A: {dict(zip(columns_a, row))}")
            continue
        other = partners.pop(0)
        where = ", ".join(f"{columns_a[i]}={row[i]}" for i in key_at) or "a row"
        for column, x, y in zip(columns_a, row, other):
            if x != y:
                lines.append(f"{name}: [{where}] {column}: A {x} != B {y}")
    for rows in by_key_b.values():
        lines += [f"{name}: only in B: {dict(zip(columns_a, row))}" for row in rows]
    return lines


def differences(a: str | Path, b: str | Path, ignore: tuple[str, ...] = ()) -> list[str]:
    """Every difference between results folders `a` and `b`, one line each (empty: identical to the digit).
    `ignore`: tables (`findings`) or columns (`checkpoints:path`, where two series lie in two
    folders) left out of the comparison."""
    a, b = Path(a), Path(b)
    tables_a, tables_b = (_without(read_tables(x), ignore) for x in (a, b))
    lines = [f"{name}: only in {side}" for side, mine, theirs in (("A", tables_a, tables_b), ("B", tables_b, tables_a))
             for name in sorted(set(mine) - set(theirs))]
    for name in sorted(set(tables_a) & set(tables_b)):
        lines += table_differences(name, tables_a[name], tables_b[name], ["key"] if name == MANIFEST else None)
    files_a, files_b = other_files(a), other_files(b)
    for name in sorted(set(files_a) | set(files_b)):
        if files_a.get(name) != files_b.get(name):
            digest_a, digest_b = files_a.get(name, "absent")[:16], files_b.get(name, "absent")[:16]
            lines.append(f"{name}: content A {digest_a} != B {digest_b}")
    return lines


def _without(tables: dict, ignore: tuple[str, ...]) -> dict:
    out = {}
    for name, frame in tables.items():
        if name in ignore:
            continue
        dropped = [spec.split(":", 1)[1] for spec in ignore if spec.startswith(f"{name}:")]
        out[name] = frame.drop(columns=[c for c in dropped if c in frame.columns]) if dropped else frame
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", type=Path, help="a results folder")
    parser.add_argument("b", type=Path, help="another results folder")
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print the first N differences only "
                        "(default: every one)")
    parser.add_argument("--write-csv", type=Path, metavar="DIR", help="also write each folder's canonical CSVs "
                        "under DIR/A and DIR/B (to diff by hand)")
    parser.add_argument("--ignore", action="append", default=[], metavar="TABLE[:COLUMN]",
                        help="leave a table (findings) or a column (checkpoints:path) out; repeatable")
    args = parser.parse_args(argv)
    if args.write_csv:
        for side, folder in (("A", args.a), ("B", args.b)):
            target = args.write_csv / side
            target.mkdir(parents=True, exist_ok=True)
            for name, frame in read_tables(folder).items():
                (target / f"{Path(name).stem}.csv").write_text(canonical_csv(frame), encoding="utf-8")
    lines = differences(args.a, args.b, tuple(args.ignore))
    shown = lines[:args.show] if args.show else lines
    for line in shown:
        print(line)
    tables = len(set(read_tables(args.a)) | set(read_tables(args.b)))
    if lines:
        more = f" ({len(lines) - len(shown):,} not shown)" if len(shown) < len(lines) else ""
        print(f"{len(lines):,} differences across {tables} tables{more}", file=sys.stderr)
        return 1
    print(f"identical: {tables} tables (canonical CSV), {len(other_files(args.a))} other files", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
