"""Reference models, sized to train on Fashion-MNIST/MNIST on 2 CPU cores in minutes.

Each builder takes ``input_shape`` and ``num_classes`` and returns an untrained tf-keras model
whose layers have stable, readable names (the pruning plan and the reports refer to them).
"""
from __future__ import annotations

from typing import Callable

from edgeprune.errors import EdgepruneError
from edgeprune.keras import keras, layers

ZooBuilder = Callable[..., keras.Model]
MODELS: dict[str, ZooBuilder] = {}


def register(name: str):
    def deco(fn):
        MODELS[name] = fn
        return fn

    return deco


def build(name: str, input_shape=(28, 28, 1), num_classes: int = 10, seed: int = 0) -> keras.Model:
    if name not in MODELS:
        raise EdgepruneError(f"unknown zoo model '{name}'", f"use one of {', '.join(sorted(MODELS))} or a model file")
    keras.utils.set_random_seed(seed)
    try:
        return MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)
    except ValueError as e:  # e.g. images too small for the model's downsampling
        first = (str(e).strip().splitlines() or [""])[0][:120]
        raise EdgepruneError(f"zoo model {name} cannot take images of shape {tuple(input_shape)} ({first})",
                             "use larger images or another zoo model") from None


@register("lenet5")
def lenet5(input_shape, num_classes):
    """LeNet-5, Caffe variant: conv 20 → pool → conv 50 → pool → fc 500 → fc classes (431k params)."""
    x = inp = keras.Input(input_shape, name="input")
    x = layers.Conv2D(20, 5, name="conv1")(x)
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = layers.Conv2D(50, 5, name="conv2")(x)
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(500, activation="relu", name="fc1")(x)
    x = layers.Dense(num_classes, activation="softmax", name="fc2")(x)
    return keras.Model(inp, x, name="lenet5")


def _conv_bn(x, filters, kernel, stride, name, act=True):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if act else x


@register("resnet8")
def resnet8(input_shape, num_classes):
    """ResNet-8 in the MLPerf Tiny image-classification shape (16/32/64 filters), for 28×28 inputs."""
    x = inp = keras.Input(input_shape, name="input")
    x = _conv_bn(x, 16, 3, 1, "stem")
    for i, (filters, stride) in enumerate([(16, 1), (32, 2), (64, 2)], start=1):
        y = _conv_bn(x, filters, 3, stride, f"block{i}a")
        y = _conv_bn(y, filters, 3, 1, f"block{i}b", act=False)
        if stride != 1 or x.shape[-1] != filters:
            x = layers.Conv2D(filters, 1, strides=stride, padding="same", name=f"block{i}_shortcut")(x)
        x = layers.Add(name=f"block{i}_add")([x, y])
        x = layers.ReLU(name=f"block{i}_out")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inp, x, name="resnet8")


@register("dscnn")
def dscnn(input_shape, num_classes, width: int = 64, blocks: int = 4):
    """DS-CNN (MLPerf Tiny KWS style): a strided conv then depthwise-separable blocks, GAP, classifier."""
    x = inp = keras.Input(input_shape, name="input")
    x = _conv_bn(x, width, 3, 2, "stem")
    for i in range(1, blocks + 1):
        x = layers.DepthwiseConv2D(3, padding="same", use_bias=False, name=f"ds{i}_dw")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"ds{i}_dw_bn")(x)
        x = layers.ReLU(name=f"ds{i}_dw_relu")(x)
        x = _conv_bn(x, width, 1, 1, f"ds{i}_pw")
    x = layers.Dropout(0.2, name="dropout")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inp, x, name="dscnn")


def _inverted_residual(x, expand, out, stride, name):
    inp = x
    c = x.shape[-1]
    x = layers.Conv2D(c * expand, 1, use_bias=False, name=f"{name}_expand")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_expand_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_expand_relu")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu")(x)
    x = layers.Conv2D(out, 1, use_bias=False, name=f"{name}_project")(x)
    x = layers.BatchNormalization(momentum=0.9, name=f"{name}_project_bn")(x)
    if stride == 1 and c == out:
        x = layers.Add(name=f"{name}_add")([inp, x])
    return x


@register("mobilenetv2")
def mobilenetv2(input_shape, num_classes):
    """A small MobileNetV2: inverted residuals (expand → depthwise → project) with residual Adds."""
    x = inp = keras.Input(input_shape, name="input")
    x = _conv_bn(x, 16, 3, 1, "stem")
    cfg = [(1, 16, 1), (4, 24, 2), (4, 24, 1), (4, 32, 2), (4, 32, 1), (4, 48, 1)]
    for i, (expand, out, stride) in enumerate(cfg, start=1):
        x = _inverted_residual(x, expand, out, stride, f"ir{i}")
    x = layers.Conv2D(128, 1, use_bias=False, name="head_conv")(x)
    x = layers.BatchNormalization(momentum=0.9, name="head_bn")(x)
    x = layers.ReLU(6.0, name="head_relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inp, x, name="mobilenetv2")
