"""One small model per family of layer rules (K = keras or tf_keras), shared by the registry's unit test
(every rule has a fixture) and its end-to-end twin (each fixture prunes equivalently and carries both ways)."""
import numpy as np


def conv2d(K):
    """2-D convolutions, activations, dropouts, poolings, paddings, merges, shared and grouped layers."""
    L = K.layers
    inp = K.Input((16, 16, 3), name="img")
    x = L.Rescaling(1 / 2, offset=-0.5, name="rescale")(inp)
    x = L.Conv2D(12, 3, padding="same", name="stem")(x)
    x = L.BatchNormalization(name="bn")(x)
    x = L.ReLU(name="relu")(x)
    x = L.LeakyReLU(name="leaky")(x)
    x = L.ELU(name="elu")(x)
    if hasattr(L, "ThresholdedReLU"):
        x = L.ThresholdedReLU(theta=0.0, name="thr")(x)
    x = L.PReLU(shared_axes=[1, 2], name="prelu")(x)
    x = L.ZeroPadding2D(1, name="pad")(x)
    x = L.Cropping2D(1, name="crop")(x)
    x = L.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = L.Conv2D(12, 3, padding="same", groups=12, name="dwlike")(x)
    x = L.SeparableConv2D(12, 3, padding="same", name="sep")(x)
    for name, cls in [("drop", L.Dropout), ("sdrop", L.SpatialDropout2D), ("gdrop", L.GaussianDropout),
                      ("adrop", L.AlphaDropout)]:
        x = cls(0.1, name=name)(x)
    x = L.GaussianNoise(0.1, name="noise")(x)
    x = L.ActivityRegularization(name="actreg")(x)
    x = L.Identity(name="ident")(x)
    x = L.Activation("relu", name="act")(x)
    x = L.MaxPooling2D(2, name="maxpool")(x)
    x = L.UpSampling2D(2, name="up")(x)
    x = L.AveragePooling2D(2, name="avgpool")(x)          # (8, 8, 12)
    x = L.Rescaling(0.5, name="rescale_mid")(x)
    x = L.Normalization(mean=np.linspace(-1, 1, 12), variance=np.linspace(0.5, 2, 12), name="norm")(x)
    shared = L.Conv2D(8, 1, name="shared")               # called twice: both inputs share its channels
    a, b = shared(x), shared(L.Conv2D(12, 1, name="pre_b")(x))
    merged = [L.Add(name="add")([a, b]), L.Subtract(name="sub")([a, b]), L.Multiply(name="mul")([a, b]),
              L.Average(name="avg")([a, b]), L.Maximum(name="max")([a, b]), L.Minimum(name="min")([a, b])]
    c = L.Concatenate(name="cat")(merged)                  # (8, 8, 48)
    rows = L.Concatenate(axis=1, name="cat_rows")([a, L.Conv2D(8, 1, name="c_rows")(x)])  # (16, 8, 8)
    g = L.Conv2D(8, 3, padding="same", groups=2, name="grouped")(L.Conv2D(8, 1, name="pre_g")(x))
    t = L.Conv2DTranspose(6, 3, strides=2, padding="same", name="tconv")(c)
    s = L.Softmax(name="chan_softmax")(L.Conv2D(4, 1, name="pre_softmax")(x))
    s = L.LayerNormalization(name="ln")(L.Conv2D(4, 1, name="pre_ln")(s))
    heads = [L.GlobalMaxPooling2D(name="gmp")(t), L.GlobalAveragePooling2D(name="gap")(rows),
             L.GlobalAveragePooling2D(name="gap_g")(g), L.GlobalAveragePooling2D(name="gap_s")(s)]
    h = L.Dense(16, activation="relu", name="fc")(L.Concatenate(name="cat_heads")(heads))
    return K.Model(inp, L.Dense(5, activation="softmax", name="out")(h), name="conv2d")


def conv1d(K):
    L = K.layers
    inp = K.Input((24, 3), name="seq")
    x = L.Conv1D(8, 3, name="c1")(inp)
    x = L.ZeroPadding1D(1, name="pad")(x)
    x = L.Cropping1D(1, name="crop")(x)
    x = L.SpatialDropout1D(0.1, name="sdrop")(x)
    x = L.MaxPooling1D(2, name="maxpool")(x)
    x = L.UpSampling1D(2, name="up")(x)
    x = L.AveragePooling1D(2, name="avgpool")(x)
    x = L.DepthwiseConv1D(3, padding="same", name="dw")(x)
    x = L.SeparableConv1D(8, 3, padding="same", name="sep")(x)
    x = L.Conv1DTranspose(8, 3, strides=2, padding="same", name="tconv")(x)
    heads = [L.GlobalMaxPooling1D(name="gmp")(x), L.GlobalAveragePooling1D(name="gap")(x)]
    v = L.RepeatVector(3, name="repeat")(L.Dense(6, name="fc")(L.Concatenate(name="cat")(heads)))
    return K.Model(inp, L.Dense(4, name="out")(L.Flatten(name="flat")(v)), name="conv1d")


def conv3d(K):
    L = K.layers
    inp = K.Input((6, 6, 6, 2), name="vol")
    x = L.Conv3D(8, 3, padding="same", name="c3")(inp)
    x = L.ZeroPadding3D(1, name="pad")(x)
    x = L.Cropping3D(1, name="crop")(x)
    x = L.SpatialDropout3D(0.1, name="sdrop")(x)
    x = L.MaxPooling3D(2, name="maxpool")(x)
    x = L.UpSampling3D(2, name="up")(x)
    x = L.AveragePooling3D(2, name="avgpool")(x)
    x = L.Conv3DTranspose(8, 3, strides=2, padding="same", name="tconv")(x)
    heads = [L.GlobalMaxPooling3D(name="gmp")(x), L.GlobalAveragePooling3D(name="gap")(x)]
    return K.Model(inp, L.Dense(4, name="out")(L.Concatenate(name="cat")(heads)), name="conv3d")


def recurrent(K):
    """Token ids -> embedding -> LSTM/GRU/bidirectional SimpleRNN and LSTM; an EinsumDense side branch."""
    L = K.layers
    inp = K.Input((10,), dtype="int32", name="tokens")
    e = L.Embedding(50, 8, name="emb")(inp)
    x = L.LSTM(8, return_sequences=True, name="lstm")(e)
    x = L.GRU(8, return_sequences=True, name="gru")(x)
    x = L.Bidirectional(L.SimpleRNN(6, return_sequences=True), name="birnn")(x)
    x = L.Bidirectional(L.LSTM(6), merge_mode="sum", name="bilstm")(x)
    side = L.EinsumDense("abc,cd->abd", output_shape=(10, 4), name="einsum")(L.Dense(6, name="pre_einsum")(e))
    side = L.GlobalAveragePooling1D(name="gap")(side)
    h = L.Concatenate(name="cat")([x, side])
    return K.Model(inp, L.Dense(3, name="out")(h), name="recurrent")


def shapes(K):
    """Reshape and Permute that keep the channel axis, Flatten."""
    L = K.layers
    inp = K.Input((16, 16, 3), name="img")
    x = L.Conv2D(8, 3, name="conv")(inp)                      # (14, 14, 8)
    x = L.Reshape((14, 14 * 8), name="merge_w_c")(x)
    x = L.Conv1D(6, 3, name="c1d")(x)                          # (12, 6)
    x = L.Reshape((12, 1, 6), name="add_unit_axis")(x)
    x = L.Permute((2, 1, 3), name="swap_rows")(x)
    x = L.Flatten(name="flat")(x)
    return K.Model(inp, L.Dense(3, name="out")(x), name="shapes")


def tf_keras_only(K):
    """Layers only tf-keras has (pruned, not carried: Keras 3 could not load them anyway)."""
    L = K.layers
    inp = K.Input((8, 8, 3), name="img")
    x = L.ThresholdedReLU(theta=0.1, name="thr")(L.Conv2D(8, 3, name="conv")(inp))
    x = L.ReLU(6.0, name="relu6")(x + 3.0) * (1 / 6)              # TFOpLambda ops (hard-sigmoid style)
    return K.Model(inp, L.Dense(3, name="out")(L.GlobalAveragePooling2D(name="gap")(x)), name="tf_keras_only")


FIXTURES = {f.__name__: f for f in (conv2d, conv1d, conv3d, recurrent, shapes, tf_keras_only)}
