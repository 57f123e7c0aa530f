"""Data set versions and splits, training and fine-tuning, evaluation, cross-validation, tuning, architecture
comparison, export, and registering trained models."""
