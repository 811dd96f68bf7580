"""Comparing a model with its carried copy (Keras 3 <-> tf-keras): outputs, and weights made non-trivial
first so that a wrong copy cannot pass. Shared by tests/unit/test_modelio.py and its e2e twin."""
import numpy as np

TOL = 1e-5


def as_list(v):
    return list(v) if isinstance(v, (list, tuple)) else [v]


def predict(model, x):
    return [np.asarray(t) for t in as_list(model(x, training=False))]


def assert_close(ref, got, tol=TOL):
    assert len(ref) == len(got)
    for a, b in zip(ref, got):
        assert a.shape == b.shape
        scale = max(1.0, float(np.abs(a).max()))
        assert float(np.abs(a - b).max()) <= tol * scale, float(np.abs(a - b).max())


def randomize(model, seed=0):
    """Non-trivial weights everywhere (BN statistics included), so a wrong copy cannot pass."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if hasattr(layer, "layers"):
            randomize(layer, seed + 1)
            continue
        values = []
        for w, v in zip(layer.weights, layer.get_weights()):
            r = rng.normal(0, 0.3, v.shape).astype(v.dtype)
            values.append(np.abs(r) + 0.5 if "variance" in w.name else r)
        if values:
            layer.set_weights(values)
    return model
