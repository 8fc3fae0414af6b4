"""Training entry points: SFT warm-up and GRPO (TRL trainers)."""
