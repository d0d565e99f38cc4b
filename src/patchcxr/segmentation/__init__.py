"""Lung and heart segmentation: data, metrics, training, evaluation, mask prediction."""
