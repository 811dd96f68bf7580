"""The translation tables shared by every layer: generic config edits, activations and graph ops.

A layer config from one Keras is made acceptable to the other by applying the generic
:class:`KeyRule` edits below, then the edits its layer rule owns (``pruning/rules.py``, exact
class name).  Activations and graph ops the target Keras lacks are rewritten as short chains of
standard layers (``Rescaling``/``ReLU``/``Multiply``) that both Keras versions load without
custom objects.
"""
from __future__ import annotations

from typing import Callable

from edgeprune.pruning.rules import ANY, KeyRule, RuleError, rule_for_class

__all__ = ["ANY", "KeyRule", "RuleError", "key_rules", "OPS"]


def _policy_name(value):
    """Keras 3 writes dtype as a DTypePolicy dict; tf-keras wants the policy name string."""
    if isinstance(value, dict) and "config" in value:
        return value["config"].get("name", "float32")
    return value


def _strip_initializer_axes(value):
    """Keras 3 initializers carry input_axes/output_axes (EinsumDense only); weights are copied
    after building, so the initializer never runs and the axes can go."""
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        value = dict(value, config={k: v for k, v in value["config"].items()
                                    if k not in ("input_axes", "output_axes")})
    return value


_INITIALIZER_KEYS = ("kernel_initializer", "bias_initializer", "depthwise_initializer",
                     "pointwise_initializer", "recurrent_initializer", "embeddings_initializer",
                     "gamma_initializer", "beta_initializer", "moving_mean_initializer",
                     "moving_variance_initializer")

# Edits every layer config gets; a layer type's own edits live on its rule (pruning/rules.py).
KERAS3_TO_TFKERAS: list[KeyRule] = [
    KeyRule(ANY, "batch_shape", rename="batch_input_shape"),
    KeyRule(ANY, "dtype", convert=_policy_name),
    *[KeyRule(ANY, k, convert=_strip_initializer_axes) for k in _INITIALIZER_KEYS],
]

TFKERAS_TO_KERAS3: list[KeyRule] = [
    KeyRule(ANY, "batch_input_shape", rename="batch_shape"),
]


def key_rules(class_name: str, direction: str) -> list[KeyRule]:
    """The edits for one layer class: the generic ones, then its rule's own (``to_tfkeras`` or
    ``to_keras3``), matched on the exact class name."""
    generic = KERAS3_TO_TFKERAS if direction == "to_tfkeras" else TFKERAS_TO_KERAS3
    rule = rule_for_class(class_name)
    return generic + list(getattr(rule, direction, ()) if rule is not None else ())


# ---- activations and ops the target lacks, rewritten as chains of standard layers -------------
# An expansion is fn(L, x, name) -> tensor, where L is the target `layers` module.

def _relu6(L, x, name):
    return L.ReLU(max_value=6.0, name=f"{name}_relu6")(x)


def _hard_sigmoid_keras3(L, x, name):
    """Keras 3 hard_sigmoid: relu6(x + 3) / 6 == clip(x/6 + 1/2, 0, 1)."""
    x = L.Rescaling(1.0 / 6.0, offset=0.5, name=f"{name}_hsig_affine")(x)
    return L.ReLU(max_value=1.0, name=f"{name}_hsig_clip")(x)


def _hard_sigmoid_tfkeras(L, x, name):
    """tf-keras hard_sigmoid: clip(0.2 x + 0.5, 0, 1) (differs from Keras 3's)."""
    x = L.Rescaling(0.2, offset=0.5, name=f"{name}_hsig_affine")(x)
    return L.ReLU(max_value=1.0, name=f"{name}_hsig_clip")(x)


def _hard_swish_keras3(L, x, name):
    return L.Multiply(name=f"{name}_hswish")([x, _hard_sigmoid_keras3(L, x, name)])


def _leaky_relu_keras3(L, x, name):
    return L.LeakyReLU(0.2, name=f"{name}_leaky")(x)  # Keras 3 activation default slope 0.2


# activation name -> (native name in target | None, expansion | None)
ACTIVATIONS_KERAS3_TO_TFKERAS: dict[str, tuple[str | None, Callable | None]] = {
    "silu": ("swish", None),
    "relu6": (None, _relu6),
    "hard_sigmoid": (None, _hard_sigmoid_keras3),
    "hard_silu": (None, _hard_swish_keras3),
    "hard_swish": (None, _hard_swish_keras3),
    "leaky_relu": (None, _leaky_relu_keras3),
}
ACTIVATIONS_TFKERAS_TO_KERAS3: dict[str, tuple[str | None, Callable | None]] = {
    "hard_sigmoid": (None, _hard_sigmoid_tfkeras),
}


def _scalar(v) -> bool:
    """A Python number, or a rank-0 constant (tf-keras records `1.0 - x` with a tf constant)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    return not hasattr(v, "_keras_history") and getattr(v, "shape", None) == () and hasattr(v, "numpy")


# Graph ops (Keras 3 `keras.ops` nodes, tf-keras TFOpLambda) -> standard layers.
# op key -> fn(L, args, name) -> tensor | None (None: this call pattern is not expressible).
def _num(v) -> float:
    return float(v.numpy()) if hasattr(v, "numpy") else float(v)


def _op_add(L, args, name):
    a, b = args[:2]
    if _scalar(b):
        return L.Rescaling(1.0, offset=_num(b), name=name)(a)
    if _scalar(a):
        return L.Rescaling(1.0, offset=_num(a), name=name)(b)
    return L.Add(name=name)([a, b])


def _op_subtract(L, args, name):
    a, b = args[:2]
    if _scalar(b):
        return L.Rescaling(1.0, offset=-_num(b), name=name)(a)
    if _scalar(a):
        return L.Rescaling(-1.0, offset=_num(a), name=name)(b)
    return L.Subtract(name=name)([a, b])


def _op_multiply(L, args, name):
    a, b = args[:2]
    if _scalar(b):
        return L.Rescaling(_num(b), name=name)(a)
    if _scalar(a):
        return L.Rescaling(_num(a), name=name)(b)
    return L.Multiply(name=name)([a, b])


def _op_divide(L, args, name):
    a, b = args[:2]
    if _scalar(b) and _num(b) != 0:
        return L.Rescaling(1.0 / _num(b), name=name)(a)
    return None


def _op_relu6(L, args, name):
    return L.ReLU(max_value=6.0, name=name)(args[0])


def _op_relu(L, args, name):
    return L.ReLU(name=name)(args[0])


def _op_sigmoid(L, args, name):
    return L.Activation("sigmoid", name=name)(args[0])


OPS: dict[str, Callable] = {
    # Keras 3 keras.ops class names
    "Add": _op_add, "Subtract": _op_subtract, "Multiply": _op_multiply, "TrueDivide": _op_divide,
    "Divide": _op_divide, "Relu6": _op_relu6, "Relu": _op_relu, "Sigmoid": _op_sigmoid,
    # tf-keras TFOpLambda symbols
    "__operators__.add": _op_add, "math.add": _op_add, "math.subtract": _op_subtract,
    "math.multiply": _op_multiply, "math.truediv": _op_divide, "math.divide": _op_divide,
    "nn.relu6": _op_relu6, "nn.relu": _op_relu, "math.sigmoid": _op_sigmoid,
}
