"""A small MobileNet-like model for the sparse 1×1 tests (both tiers): a 3×3 stride-2 stem, inverted
residual blocks (1×1 expand, depthwise, 1×1 project), global pool, dense; explicit symmetric padding at
stride 2 (`sym`, what XNNPACK's sparse path needs) or Keras's SAME-style (0, 1) padding."""
import numpy as np


def _block(L, x, cin, cout, stride, i, sym):
    h = L.Conv2D(cin * 2, 1, use_bias=False, name=f"b{i}_expand")(x)
    h = L.ReLU(6.0, name=f"b{i}_expand_relu")(h)
    if stride == 2:
        h = L.ZeroPadding2D(((1, 1), (1, 1)) if sym else ((0, 1), (0, 1)), name=f"b{i}_pad")(h)
        h = L.DepthwiseConv2D(3, strides=2, padding="valid", use_bias=False, name=f"b{i}_depthwise")(h)
    else:
        h = L.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"b{i}_depthwise")(h)
    h = L.ReLU(6.0, name=f"b{i}_depthwise_relu")(h)
    h = L.Conv2D(cout, 1, use_bias=False, name=f"b{i}_project")(h)
    return L.Add(name=f"b{i}_add")([x, h]) if stride == 1 and cin == cout else h


def tiny_mobilenet(sym=True, size=16, classes=4):
    """Stem → [1×1 expand → depthwise 3×3 → 1×1 project] ×3 → GAP → Dense; sym: explicit symmetric padding."""
    from edgeprune.keras import keras

    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((size, size, 3))
    if sym:
        x = L.Conv2D(8, 3, strides=2, padding="valid", name="Conv1")(L.ZeroPadding2D(1, name="stem_pad")(inp))
    else:
        x = L.Conv2D(8, 3, strides=2, padding="same", name="Conv1")(inp)
    x = L.ReLU(6.0, name="Conv1_relu")(x)
    x = _block(L, x, 8, 8, 1, 1, sym)
    x = _block(L, x, 8, 16, 2, 2, sym)
    x = _block(L, x, 16, 16, 1, 3, sym)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inp, L.Dense(classes, activation="softmax", name="head")(x))


def zero_1x1(model, fraction):
    """The smallest |w| of every 1×1 conv kernel set to zero, `fraction` of each (the product's own mask)."""
    from edgeprune.strategies.sparse_1x1 import magnitude_mask, pointwise_convs

    for layer in pointwise_convs(model):
        w = layer.get_weights()
        w[0] = w[0] * magnitude_mask(w[0], fraction)
        layer.set_weights(w)
    return model


def tflite(model, quant):
    from edgeprune.export.tflite import convert_tflite

    calib = np.random.default_rng(0).uniform(0, 1, (8, *model.inputs[0].shape[1:])).astype(np.float32)
    return convert_tflite(model, quant=quant, calibration=calib if quant == "int8" else None)


def problems(model, quant="sparse"):
    from edgeprune.export.sparse_1x1 import sparse_1x1_problems

    return sparse_1x1_problems(tflite(model, quant))
