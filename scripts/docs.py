"""Build probekit's own documentation site with the example notebooks executed, their outputs shown.

    .venv/bin/python scripts/docs.py                  # on the demo (`probekit demo` made local/demo)
    .venv/bin/python scripts/docs.py --demo DIR       # on another demo folder (DIR/probe, DIR/my_bert)

Needs the notebook extra (`bash scripts/install.sh notebook`). Each notebook runs in docs/ as Jupyter runs it,
its settings injected after its `parameters` cell; the executed copies go to OUT/notebooks and the site, built
--strict from them (docs/_hooks/notebooks.py), to OUT/site. Without this script, `mkdocs build` shows the
notebooks as committed: without outputs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def execute(demo: Path, folder: Path) -> None:
    """Run the four notebooks on the demo's results and series into `folder`."""
    from probekit.views import run_notebook

    results, series = demo / "probe", demo / "my_bert"
    for path in (results / "manifest.json", series):
        if not path.exists():
            sys.exit(f"{path}: missing — run `.venv/bin/probekit demo` first (or pass --demo DIR)")
    settings = {"when": {"RESULTS": str(results)}, "syntax": {"RESULTS": str(results)},
                "where": {"RESULTS": str(results), "SERIES": str(series)}, "example": {"OUT": str(demo)}}
    for name, parameters in settings.items():
        start = time.perf_counter()
        run_notebook(ROOT / "docs" / f"{name}.ipynb", folder / f"{name}.ipynb", **parameters)
        print(f"executed docs/{name}.ipynb in {time.perf_counter() - start:.0f} s", flush=True)


def build(folder: Path, site: Path) -> None:
    """`mkdocs build --strict` of the project docs from the executed notebooks in `folder`."""
    env = {**os.environ, "PROBEKIT_EXECUTED_NOTEBOOKS": str(folder)}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(site)], env=env)
    if proc.returncode:
        sys.exit(f"{ROOT / 'mkdocs.yml'}: mkdocs build --strict failed (exit {proc.returncode})")
    print(f"docs: {site / 'index.html'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo", type=Path, default=ROOT / "local" / "demo", help="the demo folder (default local/demo)")
    parser.add_argument("--out", type=Path, default=ROOT / "local" / "docs", help="where the notebooks and site go")
    args = parser.parse_args()
    execute(args.demo.resolve(), args.out.resolve() / "notebooks")
    build(args.out.resolve() / "notebooks", args.out.resolve() / "site")


if __name__ == "__main__":
    main()
