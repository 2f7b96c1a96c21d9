"""Regenerate probekit/benchmarks/countries.csv, the fact table behind the shipped benchmarks.

Facts: PyPI `countryinfo==1.0.1` (MIT): country, capital, region. Language and currency names for its ISO
codes: PyPI `pycountry` (ISO 639 / ISO 4217 names from Debian's iso-codes). Neither is a runtime dependency.

    pip install --no-deps countryinfo==1.0.1 pycountry && python scripts/make_country_facts.py
"""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path

import countryinfo
import pycountry

DISSOLVED = {"Antilles néerlandaises"}
OUT = Path(__file__).resolve().parents[1] / "probekit" / "benchmarks" / "countries.csv"


def continent(region: str | None, intermediate: str | None) -> str:
    if region == "Americas":
        return "South America" if intermediate == "South America" else "North America"
    return region if region in {"Africa", "Asia", "Europe", "Oceania"} else ""


def name_of(table, code: str | None, key: str) -> str:
    record = table.get(**{key: code}) if code else None
    return getattr(record, "common_name", None) or getattr(record, "name", "") if record else ""


def main() -> None:
    folder = os.path.join(os.path.dirname(countryinfo.__file__), "data")
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        info = json.loads(Path(path).read_text(encoding="utf-8"))
        if not info.get("name") or not info.get("capital"):
            continue
        languages, currencies = info.get("languages") or [None], info.get("currencies") or [None]
        rows.append({
            "country": info["name"],
            "capital": info["capital"],
            "continent": continent(info.get("region"), info.get("intermediateregion")),
            "language": name_of(pycountry.languages, languages[0], "alpha_2"),
            "currency": name_of(pycountry.currencies, currencies[0], "alpha_3"),
        })
    rows = sorted({r["country"]: r for r in rows if r["country"] not in DISSOLVED}.values(), key=lambda r: r["country"])
    with open(OUT, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} countries -> {OUT}")


if __name__ == "__main__":
    main()
