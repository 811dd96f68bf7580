"""A small CNN twice, ending in softmax or in logits, with the same weights (the twins the logits tests
compare in both tiers)."""
from edgeprune.keras import keras, layers


def cnn(activation, seed=0):
    keras.utils.set_random_seed(seed)
    x = inp = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = layers.Conv2D(24, 3, strides=2, activation="relu", name="conv2")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu", name="conv3")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(40, activation="relu", name="fc")(x)
    x = layers.Dense(10, activation=activation, name="out")(x)
    return keras.Model(inp, x, name=f"cnn_{activation or 'logits'}")


def twins():
    soft, logit = cnn("softmax"), cnn(None)
    logit.set_weights(soft.get_weights())
    return soft, logit
