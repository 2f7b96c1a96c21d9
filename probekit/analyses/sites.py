"""The sites causal tracing restores and attribution patching estimates: each component's hook point, and a
prompt's result (`Trace`). Both `probekit.analyses.tracing` and `probekit.analyses.attribution` read them from
here, so neither imports the other's module back."""

from __future__ import annotations

from dataclasses import dataclass, field

COMPONENTS = {"resid": "hook_resid_post", "attn": "hook_attn_out", "mlp": "hook_mlp_out", "head": "attn.hook_z",
              "knockout": "attn.hook_mask"}
"""Component → the block hook point whose clean value is patched in."""
HEAD = "head"
"""The component restored per attention head (all positions), not per position."""
KNOCKOUT = "knockout"
"""The component that blocks attention from the [MASK] to the subject in the clean run, per layer."""


@dataclass
class Trace:
    """One prompt's tracing: p_clean, p_corrupt and, per component, p_restored [layers, positions] ([layers,
    heads] for the component `head`, [layers, 1] for `knockout`: p with that layer's attention blocked); in
    `masks`, per position component, p_restored [layers] with the clean value restored at every [MASK] at
    once (the answer's pieces are scored jointly, so restoring one mask of several is not restoring the
    answer's read-out). p_corrupt and every p_restored are means over the corruption's draws (`draws`:
    noise samples or counterfactual subjects), taken on the probability scale before any difference."""

    p_clean: float
    p_corrupt: float
    restored: dict
    masks: dict = field(default_factory=dict)
    draws: int = 1
