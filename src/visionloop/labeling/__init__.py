"""Active-learning samplers, the review queue, the Label Studio client and sync, and label format conversion."""
