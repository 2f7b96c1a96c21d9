"""Named training recipes: `seed` reproduces the course notebook, `default` trains the same model well."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from probekit.errors import ProbekitError


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a training run, readable on one screen."""

    name: str
    # model (the notebook's tiny BERT)
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 512
    max_position: int = 128
    # data
    block_size: int = 128
    packing: bool = True
    # optimisation
    lr: float = 1e-3
    warmup: float = 0.05
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int = -1
    masked_only_decoder: bool = True
    mlm_probability: float = 0.15
    nsp: bool = False
    seed: int = 0
    # checkpoint schedule: 1, 2, 4, ... up to log_until, then every save_every steps
    log_until: int = 512
    save_every: int = 500

    def model_config(self, vocab_size: int) -> dict:
        """The `BertConfig` fields this recipe fixes (the run's identity on disk)."""
        if self.hidden_size % self.num_heads:
            raise ProbekitError(
                f"hidden size {self.hidden_size} is not divisible by {self.num_heads} attention heads"
            )
        return dict(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position,
        )

    def to_dict(self) -> dict:
        return asdict(self)


SEED = Recipe(
    name="seed",
    packing=False,
    lr=5e-5,
    warmup=0.0,
    adam_beta2=0.999,
    adam_epsilon=1e-8,
    weight_decay=0.0,
    epochs=5.0,
    masked_only_decoder=False,
)
"""The notebook: every line padded to 128, HF's default optimiser settings (lr 5e-5), 5 epochs, batch 32."""

DEFAULT = Recipe(name="default")
"""Same model, trained well: packed 128-token blocks, AdamW lr 1e-3 with 5% warmup and linear decay,
betas 0.9/0.98, eps 1e-6, weight decay 0.01, clip 1.0, MLM decoder applied only at masked positions."""

DEMO = Recipe(name="demo", hidden_size=64, num_heads=4, intermediate_size=256, block_size=32, lr=3e-3,
              epochs=1.0, max_steps=8000, mlm_probability=0.4, log_until=64, save_every=1000)
"""Sized for a few CPU minutes: hidden 64, 32-token blocks (≈30 steps/s on 2 cores), lr 3e-3, and 40% of
tokens masked (Wettig et al., "Should You Mask 15% in Masked Language Modeling?", 2023): a fact's answer
is masked, and so learned from, almost three times as often as at 15%. Pair it with a small corpus-trained
vocabulary (`--tokenizer wordpiece:8192`): with bert-base-uncased's 30,522 tokens a tiny BERT is still
predicting word frequencies after minutes on a CPU."""

PRESETS: dict[str, Recipe] = {r.name: r for r in (DEFAULT, SEED, DEMO)}


def get_preset(name: str, **overrides) -> Recipe:
    """A preset by name with any non-None overrides applied (what CLI options do)."""
    if name not in PRESETS:
        raise ProbekitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(Recipe)}
    unknown = set(overrides) - known
    if unknown:
        raise ProbekitError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
