"""The training floor: recipes (`presets`), where text comes from (`corpus`), tokenizers (`vocab`), packing and
masking (`data`), fact injection and its control group (`facts`), the checkpoint-folder protocol (`folders`)
and the Trainer recipe itself (`trainer`: `train`, `train_seeds`)."""
