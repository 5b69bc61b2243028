"""Backbones, feature extraction, head and fine-tune training, and the training grid."""
