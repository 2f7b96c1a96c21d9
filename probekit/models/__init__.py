"""The models floor: reading checkpoints and looking inside them — the lazy `Checkpoint` handle
(`checkpoints`), a series resolved from folders, globs or hub names (`series`, `hub`), each model family's
parts (`families`), one hook layer with TransformerLens names (`hooks`) and attention capture (`activations`)."""
