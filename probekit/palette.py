"""One palette and one encoding for every figure probekit draws: the report's charts, its PNGs, the notebooks.

Injected facts are drawn solid, held-back facts dashed, the random-init model dotted — on every page, in both
renderers (matplotlib takes `mpl_dash`, Vega-Lite `vega_dash`). Colours are Okabe–Ito without the yellow, so
that every line reads on white and on the dark theme. Nothing else in probekit names a colour for a group.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Okabe–Ito colours without the yellow: readable as lines on white and on the dark theme
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#000000", "#999999")
SOLID: tuple[int, ...] = ()
DASHED = (6, 4)
DOTTED = (2, 2)
#: a fact group's (colour, dash); dashes are on/off lengths in points, () solid
GROUP_STYLE: dict[str, tuple[str, tuple[int, ...]]] = {
    "injected": (PALETTE[0], SOLID),
    "held_back": (PALETTE[1], DASHED),
    "all": (PALETTE[0], SOLID),
}
#: Vega colour schemes of the heat maps: signed effects (centred at 0), levels in [0, 1], ranks and weights
DIVERGING, SEQUENTIAL, RANKS = "redblue", "viridis", "blues"
#: the untrained (random-init) model, drawn as a reference on every chart that has one
RANDOM_INIT = ("#777777", DOTTED)
#: a structural or chance baseline (fixed-offset heads, the adjacent-word tree, 0.5 for pairs)
BASELINE = ("#999999", DASHED)


def group_order(groups: Iterable) -> list[str]:
    """The fact groups present, injected and held back first (they are compared), then the others by name."""
    present = {str(g) for g in groups if g is not None and g == g}
    return [g for g in ("injected", "held_back") if g in present] + sorted(present - {"injected", "held_back"})


def group_styles(groups: Iterable) -> dict[str, tuple[str, tuple[int, ...]]]:
    """(colour, dash) for each group, in `group_order`: the fixed styles above, then the palette's unused
    colours, solid, for any other group (a user's own fact groups)."""
    ordered = group_order(groups)
    taken = {GROUP_STYLE[g][0] for g in ordered if g in GROUP_STYLE}
    spare = iter([c for c in PALETTE if c not in taken] * 4)
    return {g: GROUP_STYLE[g] if g in GROUP_STYLE else (next(spare), SOLID) for g in ordered}


def colour(i: int) -> str:
    """The i-th palette colour (for series that are not fact groups: layers, probes, heads), cycling."""
    return PALETTE[i % len(PALETTE)]


def mpl_dash(dash: tuple[int, ...]):
    """A dash as matplotlib's `linestyle`."""
    return "-" if not dash else (0, tuple(dash))


def vega_dash(dash: tuple[int, ...]) -> list[int]:
    """A dash as Vega-Lite's `strokeDash`."""
    return [1, 0] if not dash else list(dash)
