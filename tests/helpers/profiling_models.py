"""The small CNN the per-op cost tests profile in both tiers (conv 1→filters, pool, conv+BN+ReLU, dense)."""
from edgeprune.keras import keras, layers


def small_cnn(filters=16, size=24):
    """conv (1→filters) → pool → conv → flatten → dense → softmax: enough work per op to time on the host."""
    keras.utils.set_random_seed(0)
    x = inp = keras.Input((size, size, 1), name="input")
    x = layers.Conv2D(filters, 3, activation="relu", name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(32, 3, name="conv2")(x)
    x = layers.BatchNormalization(name="bn2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(64, activation="relu", name="fc1")(x)
    x = layers.Dense(10, activation="softmax", name="fc2")(x)
    return keras.Model(inp, x, name="small")
