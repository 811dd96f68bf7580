"""Shared helpers for the pruning tests: non-trivial BN statistics and a strict equivalence check."""
import numpy as np

from edgeprune.pruning import model_stats, prune, verify_equivalence


def randomize_batchnorm(model, seed=0):
    """Give every BatchNormalization non-identity statistics, so coupling mistakes show up."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "layers"):
            randomize_batchnorm(layer, seed + 1)
        if type(layer).__name__ == "BatchNormalization":
            w = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, w[0].shape), rng.normal(0, 0.2, w[1].shape),
                               rng.normal(0, 0.2, w[2].shape), rng.uniform(0.5, 1.5, w[3].shape)][: len(w)])
    return model


def prune_and_check(model, x, ratio=0.5, **kwargs):
    """Prune, then assert: equivalence ≤ 1e-4, a real difference from the un-zeroed original, fewer params."""
    pruned, plan = prune(model, ratio, **kwargs)
    diff = verify_equivalence(model, pruned, plan, x)
    assert diff <= 1e-4
    before, after = model_stats(model), model_stats(pruned)
    assert after["params"] < before["params"]
    assert after["macs"] <= before["macs"]
    assert pruned.output_shape == model.output_shape
    # the check can fail: the pruned model is *not* the untouched original
    delta = np.max(np.abs(model.predict(x, verbose=0) - pruned.predict(x, verbose=0)))
    assert delta > 1e-4, "pruning removed nothing that mattered: the equivalence check proves nothing"
    return pruned, plan, before, after
