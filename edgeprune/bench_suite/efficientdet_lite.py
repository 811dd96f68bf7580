"""EfficientDet-Lite0..4, built offline in tf-keras with random weights, for cost comparisons.

The published EfficientDet-Lite TFLite files (google/automl, TF Hub / Model Maker) are timed on
boards by others (e.g. NobuoTsukamoto/benchmarks, TFLite ``benchmark_model``). To set emulated cost
against those times we need a model with the same compute and the same TFLite op mix, not its
accuracy; so this module rebuilds the network from the definitions in google/automl ``efficientdet/``
(read from its source, not copied) and initialises it at random. Nothing is downloaded.

What is built (automl file each point comes from):

* ``hparams_config.py``, ``efficientdet_lite_param_dict`` with ``lite_common_param``: image size
  320/384/448/512/640, ``fpn_num_filters`` 64/88/112/160/224, ``fpn_cell_repeats`` 3/4/5/6/7,
  ``box_class_repeats`` 3/3/3/4/4, ``act_type='relu6'``, ``fpn_weight_method='sum'`` (plain
  additions, no fast-attention weights), ``num_classes`` 90, 3 scales x 3 aspect ratios = 9 anchors,
  levels P3..P7, ``separable_conv`` True, ``apply_bn_for_resampling`` True,
  ``conv_after_downsample`` False, ``conv_bn_act_pattern`` False; inputs normalised with
  mean 127 / std 128, i.e. the network takes values in about [-1, 1].
* ``backbone/efficientnet_lite_builder.py``: EfficientNet-B0 block table (expand 1/6, kernels
  3/5, strides), (width, depth) = (1.0,1.0) (1.0,1.1) (1.1,1.2) (1.2,1.4) (1.4,1.8), relu6, no
  squeeze-excite, ``fix_head_stem``: stem (32) and the first and last stage's repeats unscaled.
* ``backbone/efficientnet_model.py``: ``round_filters`` / ``round_repeats``, MBConv
  (1x1 expand-BN-act, depthwise-BN-act, 1x1 project-BN, identity add when stride 1 and in == out),
  the feature endpoints (``reduction_3..5``: the last block before each stride-2 stage, and the
  last block), the 1280 head is not built (``features_only``).
* ``tf2/efficientdet_keras.py`` and ``tf2/fpn_configs.py``: P3..P5 from the backbone; P6 = 1x1
  conv(+bias) + BN + max pool 3x3 / 2 'same' of P5, P7 = max pool of P6 (channels already match);
  BiFPN nodes (top-down then bottom-up, ``bifpn_config``), each input resampled by its own
  1x1 conv + BN when its width differs (so cell 0 holds two 1x1s for P4 and for P5), max pool
  3x3/2 'same' down, nearest-neighbour resize up; fused by addition, then act -> separable 3x3
  conv (+bias) -> BN (``OpAfterCombine``, no act after the BN); class and box nets of
  ``box_class_repeats`` separable 3x3 convs shared across levels with a BatchNorm per level and
  act after the BN, then shared separable 3x3 predict convs (90*9 and 4*9 outputs).
* ``tf2/postprocess.py`` (``merge_class_box_level_outputs``): each level reshaped to
  (anchors, 90) / (anchors, 4) and concatenated over levels.

Deviations, all without cost on the boards: the outputs are the raw class logits and box
regressions; the published files also hold the sigmoid, anchor decoding and the
``TFLite_Detection_PostProcess`` (NMS) custom op, and their times include that post-processing,
whose cost this model leaves out. The float file takes the normalised float input (as automl's
own TFLite export does); Model Maker's files take uint8 and normalise in the graph. Upsampling by
a non-integer ratio (e.g. P7 3x3 -> P6 5x5 at 320) uses a Keras ``Resizing`` layer (nearest,
half-pixel centres) where automl calls ``tf.compat.v1.image.resize_nearest_neighbor``; both become
one RESIZE_NEAREST_NEIGHBOR op, only the picked pixels differ. ``model_stats`` lists those
``Resizing`` layers under ``macs_unknown`` (they do no MACs). BatchNorm layers are kept (the
converter folds them) and get random statistics, so the folded weights of the per-level head BNs
are distinct tensors as in a trained model.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from edgeprune.export.tflite import export_tflite
from edgeprune.keras import keras, layers

# variant -> (image size, width coefficient, depth coefficient, fpn_num_filters, fpn_cell_repeats,
#             box_class_repeats); automl hparams_config.py + efficientnet_lite_builder.py
VARIANTS = {
    0: (320, 1.0, 1.0, 64, 3, 3),
    1: (384, 1.0, 1.1, 88, 4, 3),
    2: (448, 1.1, 1.2, 112, 5, 3),
    3: (512, 1.2, 1.4, 160, 6, 4),
    4: (640, 1.4, 1.8, 224, 7, 4),
}

# EfficientNet-B0 stages: (repeats, kernel, stride, expand ratio, input filters, output filters)
_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
STEM_FILTERS = 32
NUM_CLASSES = 90
NUM_ANCHORS = 9  # 3 scales x 3 aspect ratios
MIN_LEVEL, MAX_LEVEL = 3, 7
BN_MOMENTUM, BN_EPSILON = 0.99, 1e-3


def _round_filters(filters: int, width: float, divisor: int = 8) -> int:
    """Channels scaled by `width`, rounded to a multiple of 8, never more than 10% below."""
    scaled = filters * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if new < 0.9 * scaled:
        new += divisor
    return int(new)


def _round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


def _bn(name: str):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _act(name: str):
    return layers.ReLU(max_value=6.0, name=name)


def _backbone(x, width: float, depth: float):
    """EfficientNet-Lite features; returns the P3, P4, P5 endpoints (strides 8, 16, 32)."""
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(x)
    x = _act("stem_relu6")(_bn("stem_bn")(x))
    blocks = []  # (kernel, stride, expand, in_filters, out_filters) per block
    for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(_STAGES):
        cin, cout = _round_filters(cin, width), _round_filters(cout, width)
        if 0 < i < len(_STAGES) - 1:  # fix_head_stem: first and last stage keep their repeats
            repeats = _round_repeats(repeats, depth)
        for r in range(repeats):
            blocks.append((kernel, stride if r == 0 else 1, expand, cin if r == 0 else cout, cout))
    endpoints = []
    for b, (kernel, stride, expand, cin, cout) in enumerate(blocks):
        name = f"block{b}"
        inputs = x
        if expand != 1:
            x = layers.Conv2D(cin * expand, 1, padding="same", use_bias=False, name=f"{name}_expand")(x)
            x = _act(f"{name}_expand_relu6")(_bn(f"{name}_expand_bn")(x))
        x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
        x = _act(f"{name}_dw_relu6")(_bn(f"{name}_dw_bn")(x))
        x = layers.Conv2D(cout, 1, padding="same", use_bias=False, name=f"{name}_project")(x)
        x = _bn(f"{name}_project_bn")(x)
        if stride == 1 and cin == cout:
            x = layers.Add(name=f"{name}_add")([x, inputs])
        last = b == len(blocks) - 1
        if last or blocks[b + 1][1] > 1:  # a reduction endpoint
            endpoints.append(x)
    return endpoints[2:5]  # reduction_3, reduction_4, reduction_5


def _hw(t) -> tuple[int, int]:
    return int(t.shape[1]), int(t.shape[2])


def _resample(x, target_hw: tuple[int, int], filters: int, name: str):
    """automl ResampleFeatureMap: 1x1 conv + BN when the width differs, then max pool or nearest resize."""
    if int(x.shape[-1]) != filters:
        x = layers.Conv2D(filters, 1, padding="same", name=f"{name}_conv")(x)
        x = _bn(f"{name}_bn")(x)
    h, w = _hw(x)
    th, tw = target_hw
    if h > th and w > tw:
        sh, sw = (h - 1) // th + 1, (w - 1) // tw + 1
        x = layers.MaxPooling2D(pool_size=(sh + 1, sw + 1), strides=(sh, sw), padding="same", name=f"{name}_pool")(x)
    elif h < th or w < tw:
        if th % h == 0 and tw % w == 0:
            x = layers.UpSampling2D(size=(th // h, tw // w), interpolation="nearest", name=f"{name}_up")(x)
        else:  # e.g. 3x3 -> 5x5: one nearest resize, as automl's resize_nearest_neighbor
            x = layers.Resizing(th, tw, interpolation="nearest", name=f"{name}_resize")(x)
    return x


def _bifpn_nodes() -> list[tuple[int, list[int]]]:
    """automl fpn_configs.bifpn_config for P3..P7: (level, input node ids) per new node."""
    node_ids = {level: [level - MIN_LEVEL] for level in range(MIN_LEVEL, MAX_LEVEL + 1)}
    next_id = MAX_LEVEL - MIN_LEVEL + 1
    nodes = []
    for level in range(MAX_LEVEL - 1, MIN_LEVEL - 1, -1):  # top-down
        nodes.append((level, [node_ids[level][-1], node_ids[level + 1][-1]]))
        node_ids[level].append(next_id)
        next_id += 1
    for level in range(MIN_LEVEL + 1, MAX_LEVEL + 1):  # bottom-up
        nodes.append((level, list(node_ids[level]) + [node_ids[level - 1][-1]]))
        node_ids[level].append(next_id)
        next_id += 1
    return nodes


def _bifpn_cell(feats: list, filters: int, cell: int) -> list:
    """One BiFPN cell ('sum' fusion); returns the new P3..P7."""
    sizes = [_hw(f) for f in feats]
    nodes = list(feats)
    levels = list(range(MIN_LEVEL, MAX_LEVEL + 1))
    out = {}
    for n, (level, offsets) in enumerate(_bifpn_nodes()):
        name = f"cell{cell}_node{n}"
        target = sizes[level - MIN_LEVEL]
        ins = [_resample(nodes[o], target, filters, f"{name}_in{i}_{o}") for i, o in enumerate(offsets)]
        x = layers.Add(name=f"{name}_sum")(ins)
        x = _act(f"{name}_relu6")(x)
        x = layers.SeparableConv2D(filters, 3, padding="same", depth_multiplier=1, name=f"{name}_conv")(x)
        x = _bn(f"{name}_bn")(x)
        nodes.append(x)
        out[level] = x
    return [out[level] for level in levels]


def _head(feats: list, filters: int, repeats: int, outputs_per_anchor: int, prefix: str):
    """Class or box net: separable convs shared over levels, a BatchNorm per level and conv."""
    convs = [layers.SeparableConv2D(filters, 3, padding="same", depth_multiplier=1, name=f"{prefix}_{i}")
             for i in range(repeats)]
    predict = layers.SeparableConv2D(NUM_ANCHORS * outputs_per_anchor, 3, padding="same", depth_multiplier=1,
                                     name=f"{prefix}_predict")
    outs = []
    for level, x in zip(range(MIN_LEVEL, MAX_LEVEL + 1), feats):
        for i, conv in enumerate(convs):
            x = _act(f"{prefix}_{i}_relu6_p{level}")(_bn(f"{prefix}_{i}_bn_p{level}")(conv(x)))
        x = predict(x)
        outs.append(layers.Reshape((-1, outputs_per_anchor), name=f"{prefix}_reshape_p{level}")(x))
    return layers.Concatenate(axis=1, name=f"{prefix}_outputs")(outs)


def _randomize_batchnorm(model, seed: int):
    """Trained-looking BN parameters: gamma ~ N(1, 0.5) (a few negative), beta/mean ~ N(0, 0.1), var ~ U(0.5, 1.5).

    With the default (identical) BNs the converter would fold the shared head convs into identical
    per-level copies, and the int8 file would store them once; a trained model's per-level BNs
    differ (signs included), so its file holds every copy.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.normal(1.0, 0.5, c), rng.normal(0.0, 0.1, c),
                               rng.normal(0.0, 0.1, c), rng.uniform(0.5, 1.5, c)])


def input_size(variant: int) -> int:
    """Input height/width of EfficientDet-Lite `variant`."""
    _check(variant)
    return VARIANTS[variant][0]


def _check(variant: int):
    if variant not in VARIANTS:
        raise ValueError(f"EfficientDet-Lite variant must be one of {sorted(VARIANTS)}, not {variant!r}")


def build_efficientdet_lite(variant: int, *, seed: int = 0) -> keras.Model:
    """EfficientDet-Lite`variant` (0..4) with random weights, batch 1, no pre- or post-processing.

    Input: (size, size, 3) float32 normalised as (pixel - 127) / 128. Outputs: ``class_logits``
    (1, anchors, 90) and ``box_regression`` (1, anchors, 4), anchors = 9 x sum of P3..P7 cells.
    """
    _check(variant)
    size, width, depth, filters, cells, repeats = VARIANTS[variant]
    image = keras.Input((size, size, 3), batch_size=1, dtype="float32", name="images")
    p3, p4, p5 = _backbone(image, width, depth)
    p6 = _resample(p5, ((_hw(p5)[0] + 1) // 2, (_hw(p5)[1] + 1) // 2), filters, "resample_p6")
    p7 = _resample(p6, ((_hw(p6)[0] + 1) // 2, (_hw(p6)[1] + 1) // 2), filters, "resample_p7")
    feats = [p3, p4, p5, p6, p7]
    for cell in range(cells):
        feats = _bifpn_cell(feats, filters, cell)
    classes = _head(feats, filters, repeats, NUM_CLASSES, "class")
    boxes = _head(feats, filters, repeats, 4, "box")
    model = keras.Model(image, [classes, boxes], name=f"efficientdet_lite{variant}")
    _randomize_batchnorm(model, seed)
    return model


def export_pair(variant: int, out_dir, *, calibration_samples: int = 4, seed: int = 0) -> tuple[Path, Path]:
    """Write EfficientDet-Lite`variant` as float32 and full-integer int8 TFLite files into `out_dir`.

    The int8 file is calibrated on `calibration_samples` uniform random images in [-1, 1] (the
    normalised input range); its input and output stay float (QUANTIZE / DEQUANTIZE at the ends).
    Returns (float32 path, int8 path).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = build_efficientdet_lite(variant, seed=seed)
    size = VARIANTS[variant][0]
    rng = np.random.default_rng(seed)
    calibration = rng.uniform(-1.0, 1.0, (calibration_samples, size, size, 3)).astype(np.float32)
    fp32 = export_tflite(model, out_dir / f"efficientdet_lite{variant}_float32.tflite", quant="none")
    int8 = export_tflite(model, out_dir / f"efficientdet_lite{variant}_int8.tflite", quant="int8",
                         calibration=calibration)
    return fp32, int8
