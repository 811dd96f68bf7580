"""BatchNorm recalibration after surgery: exact running averages, nothing else touched."""
import numpy as np

from edgeprune.keras import keras, layers
from edgeprune.pruning.recalibrate import recalibrate_batchnorm


def _conv_bn():
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inp)
    x = layers.BatchNormalization(momentum=0.99, name="bn")(x)
    return keras.Model(inp, layers.ReLU()(x))


def test_moving_statistics_become_the_average_over_batches():
    model = _conv_bn()
    bn = model.get_layer("bn")
    gamma, beta = bn.gamma.numpy().copy(), bn.beta.numpy().copy()
    bn.moving_mean.assign(np.full(4, 50.0, np.float32))
    x = np.random.default_rng(0).normal(2.0, 1.5, (64, 8, 8, 3)).astype(np.float32)
    assert recalibrate_batchnorm(model, x, batch_size=16) == 1
    conv = keras.Model(model.input, model.get_layer("conv").output)
    feats = conv(x).numpy()
    batch_means = [feats[i:i + 16].mean(axis=(0, 1, 2)) for i in range(0, 64, 16)]
    np.testing.assert_allclose(bn.moving_mean.numpy(), np.mean(batch_means, axis=0), rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(bn.gamma.numpy(), gamma)
    np.testing.assert_array_equal(bn.beta.numpy(), beta)
    assert bn.momentum == 0.99


def test_model_without_batchnorm_is_left_alone():
    inp = keras.Input((4,))
    model = keras.Model(inp, layers.Dense(2)(inp))
    before = [w.copy() for w in model.get_weights()]
    assert recalibrate_batchnorm(model, np.ones((8, 4), np.float32)) == 0
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
