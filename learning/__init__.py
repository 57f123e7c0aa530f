"""Synthetic world, datasets, training and fine-tuning, evaluation, export, drift statistics and the promotion
policy."""
