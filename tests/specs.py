"""The charts of a report page as the tests read them: each chart's `<div>` and, from the script beside the pages
that assets/probekit.js loads when the chart comes near the screen, its Vega-Lite spec and the Vega it compiled to."""

from __future__ import annotations

import json
import re
from pathlib import Path

CHART = re.compile(r'<div class="probekit-chart" id="([^"]+)" data-src="([^"]+)"')


def chart_specs(text: str, folder: Path) -> list[tuple[str, dict, dict]]:
    """(chart id, Vega-Lite spec, Vega spec) of every chart in `text` (a page's HTML or Markdown), whose scripts
    lie under `folder` (the site's build or docs folder)."""
    found = []
    for chart_id, src in CHART.findall(text):
        script = (Path(folder) / src).read_text(encoding="utf-8")
        prefix = f"(window.probekitSpecs = window.probekitSpecs || {{}})[{json.dumps(chart_id)}] = "
        assert script.startswith(prefix) and script.endswith(";\n"), src
        specs = json.loads(script[len(prefix):-2])
        found.append((chart_id, specs["vega_lite"], specs["vega"]))
    return found


def vega_lite_specs(text: str, folder: Path) -> list[dict]:
    """The Vega-Lite spec of every chart in `text`."""
    return [spec for _, spec, _ in chart_specs(text, folder)]
