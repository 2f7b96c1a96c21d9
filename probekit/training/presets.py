"""Named training recipes: `seed` reproduces the course notebook, `default` trains the same model well.

A recipe is validated once, when it is made (`Recipe.__post_init__`): every way of building one (a preset,
`get_preset` overrides, `dataclasses.replace`, the CLI) is checked before anything is written.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace

from probekit.core.errors import ProbekitError

# Inclusive bounds of every numeric recipe value; the CLI's option ranges are read from here too.
LIMITS: dict[str, tuple[float, float]] = {
    "hidden_size": (8, 4096),
    "num_layers": (1, 48),
    "num_heads": (1, 64),
    "intermediate_size": (8, 16384),
    "max_position": (8, 8192),
    "block_size": (8, 8192),
    "lr": (1e-8, 1.0),
    "warmup": (0.0, 0.5),
    "adam_beta2": (0.0, 0.99999),
    "adam_epsilon": (1e-12, 1e-2),
    "weight_decay": (0.0, 1.0),
    "max_grad_norm": (0.0, 1e6),
    "batch_size": (1, 65536),
    "epochs": (1e-6, 1e6),
    "max_steps": (1, 10**9),
    "mlm_probability": (0.001, 0.999),
    "seed": (0, 2**32 - 1),
    "data_seed": (0, 2**32 - 1),
    "log_until": (0, 10**9),
    "save_every": (0, 10**9),
    "gpu_tokens_per_step": (0, 2**24),
}


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
    hf_collator: bool = False  # True: HF's DataCollatorForLanguageModeling per step (the notebook's way)
    # optimisation
    lr: float = 1e-3
    warmup: float = 0.05  # share of the steps; the learning rate rises from lr/(warmup steps+1), never 0
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-6
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    batch_size: int = 32
    epochs: float = 3.0
    max_steps: int = -1  # -1: train for `epochs`
    masked_only_decoder: bool = True
    mlm_probability: float = 0.15
    nsp: bool = False
    seed: int = 0  # initialisation, masking and data order: what differs between the seeds of one series
    data_seed: int = 0  # the corpus split and fact injection: what the seeds of one series share
    # on a GPU: tokens per optimiser step to scale the batch up to (0 = keep batch_size); see `scaled`
    gpu_tokens_per_step: int = 0
    compile: bool = False  # torch.compile the model (pays on a GPU for long runs; off by default)
    # checkpoint schedule: 1, 2, 4, ... up to log_until, then every save_every steps
    log_until: int = 512
    save_every: int = 500

    def __post_init__(self) -> None:
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name)
            if name == "max_steps" and value == -1:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ProbekitError(f"recipe {self.name!r}: {name} must be a number, not {value!r}")
            if not low <= value <= high:
                extra = " (or -1 to train for --epochs)" if name == "max_steps" else ""
                raise ProbekitError(f"recipe {self.name!r}: {name} {value:g} is outside {low:g}..{high:g}{extra}")
        if self.hidden_size % self.num_heads:
            raise ProbekitError(
                f"recipe {self.name!r}: hidden size {self.hidden_size} is not divisible by "
                f"{self.num_heads} attention heads"
            )
        if self.block_size > self.max_position:
            raise ProbekitError(
                f"recipe {self.name!r}: block size {self.block_size} exceeds the model's "
                f"{self.max_position} positions"
            )
        if self.nsp and self.block_size < 8:
            raise ProbekitError(f"recipe {self.name!r}: next-sentence pairs need blocks of at least 8 tokens")

    def model_config(self, vocab_size: int) -> dict:
        """The `BertConfig` fields this recipe fixes (the run's identity on disk)."""
        return dict(
            vocab_size=vocab_size,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.max_position,
        )

    def gpu_scale(self, world_size: int = 1) -> int:
        """How many times more examples per optimiser step a GPU run takes (1 = none): the power of two that
        brings `batch_size × block_size × world_size` tokens closest to `gpu_tokens_per_step` from below."""
        if not self.gpu_tokens_per_step:
            return 1
        per_step = self.batch_size * self.block_size * world_size
        return max(1, 2 ** int(math.log2(max(self.gpu_tokens_per_step / per_step, 1))))

    def scaled(self, k: int) -> Recipe:
        """The same training, in tokens, with k times the examples per optimiser step.

        Batch size × k; learning rate × √k (the square-root rule for Adam: Malladi et al. 2022, "On the SDEs
        and Scaling Rules for Adaptive Gradient Algorithms"; Hoffer et al. 2017); steps ÷ k, so total tokens,
        the tokens of warmup (a share of the steps) and the decay to zero stay where they were; checkpoint
        intervals ÷ k, so checkpoints fall at about the same tokens.
        """
        if k == 1:
            return self
        return replace(
            self,
            batch_size=self.batch_size * k,
            lr=min(self.lr * math.sqrt(k), LIMITS["lr"][1]),
            max_steps=self.max_steps if self.max_steps == -1 else max(1, math.ceil(self.max_steps / k)),
            log_until=self.log_until // k,
            save_every=math.ceil(self.save_every / k),
        )

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, Recipe] = {
    # Same model, trained well: packed 128-token blocks, AdamW lr 1e-3 with 5% warmup and linear decay,
    # betas 0.9/0.98, eps 1e-6, weight decay 0.01, clip 1.0, MLM decoder applied only at masked positions.
    # On a GPU each step takes 16× the examples (65,536 tokens) at 4× the learning rate: see `scaled`.
    "default": Recipe(name="default", gpu_tokens_per_step=65536),
    # The notebook: every line padded to 128, HF's collator and default optimiser settings (lr 5e-5),
    # 5 epochs, batch 32.
    "seed": Recipe(
        name="seed",
        packing=False,
        hf_collator=True,
        lr=5e-5,
        warmup=0.0,
        adam_beta2=0.999,
        adam_epsilon=1e-8,
        weight_decay=0.0,
        epochs=5.0,
        masked_only_decoder=False,
    ),
    # Sized for a few CPU minutes: hidden 64, 32-token blocks (≈30 steps/s on 2 cores), lr 3e-3, and 40% of
    # tokens masked (Wettig et al., "Should You Mask 15% in Masked Language Modeling?", 2023): a fact's answer
    # is masked, and so learned from, almost three times as often as at 15%. Pair it with a small
    # corpus-trained vocabulary (`--tokenizer wordpiece:8192`): with bert-base-uncased's 30,522 tokens a tiny
    # BERT is still predicting word frequencies after minutes on a CPU.
    "demo": Recipe(name="demo", hidden_size=64, num_heads=4, intermediate_size=256, block_size=32, lr=3e-3,
                   epochs=1.0, max_steps=5000, mlm_probability=0.4, log_until=64, save_every=500),
}


def get_preset(name: str, **overrides) -> Recipe:
    """A preset by name with any non-None overrides applied (what CLI options do); validated."""
    if name not in PRESETS:
        raise ProbekitError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(Recipe)}
    unknown = set(overrides) - known
    if unknown:
        raise ProbekitError(f"unknown recipe fields: {', '.join(sorted(unknown))}")
    return replace(PRESETS[name], **{k: v for k, v in overrides.items() if v is not None})
