"""ONNX int8 files store int8 weights (QAT and PTQ): about a quarter of the float file, parity as before."""
import numpy as np

from edgeprune.quantize.onnx_weights import grid_int8


def test_grid_int8_recovers_per_channel_and_per_tensor_grids():
    rng = np.random.default_rng(0)
    q = rng.integers(-127, 128, size=(8, 3, 5, 5))
    q[:, 0, 0, 0] = 127  # every channel reaches the top of the grid ...
    q[5] //= 2           # ... but one, which sits on a coarser one
    q[6] = 0             # a channel pruned to zero
    channel_scale = rng.uniform(1e-3, 1e-1, size=(8, 1, 1, 1))  # e.g. BatchNormalization folded in
    w = (q * channel_scale).astype(np.float32)
    iq, s = grid_int8(w, axis=0)
    assert iq.dtype == np.int8 and s.shape == (8,)
    np.testing.assert_allclose(iq * s[:, None, None, None], w, rtol=0, atol=1e-6 * np.abs(w).max())
    dense = (rng.integers(-127, 128, size=(40, 10)) * np.float32(0.01)).astype(np.float32)
    iq, s = grid_int8(dense, axis=1)
    assert s.shape == () and np.abs(iq * s - dense).max() <= 1e-7  # one scale for a per-tensor grid
    assert grid_int8(rng.normal(size=(16, 3, 3, 3)).astype(np.float32), axis=0) is None  # float weights stay float
    assert grid_int8(np.full((4, 4), 1e-3, np.float32) * np.arange(1, 5), axis=1) is not None
