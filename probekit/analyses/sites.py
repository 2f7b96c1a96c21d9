"""The sites causal tracing restores and attribution patching estimates: each component's hook point, and a
prompt's result (`Trace`). Both `probekit.analyses.tracing` and `probekit.analyses.attribution` read them from
here, so neither imports the other's module back."""

from __future__ import annotations

from dataclasses import dataclass

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
    heads] for the component `head`, [layers, 1] for `knockout`: p with that layer's attention blocked)."""

    p_clean: float
    p_corrupt: float
    restored: dict
