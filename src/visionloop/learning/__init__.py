"""Turning labels into better models: data set versions and splits, training and fine-tuning, evaluation on gold
sets, export and int8 quantization, registering trained models, and the learning loop (a challenger trained on new
labels with replay, the gold gate, the shadow, the paired A/B statistics and the promotion decision). Also
cross-validation, tuning and architecture comparison for offline work."""
