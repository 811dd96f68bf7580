"""BatchNorm recalibration after surgery.

Removing channels also removes their constant offsets (BN β through the ReLU) from the next
layers' inputs, so the moving statistics of downstream BatchNorm layers no longer describe what
they see; on BN-heavy nets (ResNet-8) one-shot pruning can fall to chance before fine-tuning.
Re-estimating the moving mean/variance on a few training batches (no weight update) fixes most
of that at the cost of a few forward passes.
"""
from __future__ import annotations

import numpy as np


def batchnorm_layers(model) -> list:
    return [l for l in model.layers if type(l).__name__ == "BatchNormalization"]


def recalibrate_batchnorm(model, x: np.ndarray, *, batch_size: int = 256, max_samples: int = 2048) -> int:
    """Replace every BatchNormalization's moving statistics by their average over `x`'s batches.

    Only the moving mean/variance change (trainable weights are untouched). Returns the number of
    BatchNormalization layers recalibrated (0: nothing to do, the model is unchanged).
    """
    bns = batchnorm_layers(model)
    x = np.asarray(x)[:max_samples]
    if not bns or not len(x):
        return 0
    saved = [(l.momentum, l.trainable) for l in bns]
    try:
        for i, start in enumerate(range(0, len(x), batch_size), start=1):
            for l in bns:
                l.trainable = True
                # moving = moving·(i−1)/i + batch/i: an exact running average over the batches seen
                l.momentum = (i - 1) / i
            model(x[start:start + batch_size], training=True)
    finally:
        for l, (momentum, trainable) in zip(bns, saved):
            l.momentum, l.trainable = momentum, trainable
    return len(bns)
