"""Rebuild a model graph in the other Keras: walk the source graph node by node, create each layer
in the target Keras from its translated config, call it on the already-rebuilt inputs, copy the
weights.  Shared layers are created once; nested sub-models are rebuilt recursively.

Walking the live graph (instead of rewriting the saved model config) sidesteps the two Keras
versions' different ``inbound_nodes`` formats and node-index conventions, and lets one source node
become a short chain of target layers when the target lacks an activation or op.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

from edgeprune.errors import EdgepruneError
from edgeprune.modelio.rules import OPS, RuleError, key_rules


@dataclass(frozen=True)
class Direction:
    """Everything that differs between the two carrying directions."""

    target_name: str                        # "tf-keras" | "Keras 3", for messages
    target: Callable[[], Any]               # returns the target keras module (imported lazily)
    source_prefixes: tuple[str, ...]        # module prefixes of the source's built-in classes
    edits: str                              # "to_tfkeras" | "to_keras3": which edits a layer rule gives
    activations: dict[str, tuple[str | None, Callable | None]]
    error: type[EdgepruneError]


@dataclass
class _Made:
    layer: Any = None                # target layer (None: the node becomes `post` alone)
    post: Callable | None = None     # expansion applied to the layer output (activation chain)
    weights_done: bool = False
    is_model: bool = False


def _is_tensor(v) -> bool:
    return hasattr(v, "_keras_history")


def _map(fn, structure):
    """map over nested lists/tuples/dicts (both Keras versions' wrappers subclass list/dict)."""
    if isinstance(structure, dict):
        return {k: _map(fn, v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [_map(fn, v) for v in structure] if isinstance(structure, list) else tuple(
            _map(fn, v) for v in structure)
    return fn(structure)


def _plain(structure):
    """Deep copy of a config with tracking wrappers (tf-keras ListWrapper/DictWrapper) made plain."""
    if isinstance(structure, dict):
        return {k: _plain(v) for k, v in structure.items()}
    if isinstance(structure, tuple):
        return tuple(_plain(v) for v in structure)
    if isinstance(structure, list):
        return [_plain(v) for v in structure]
    return copy.deepcopy(structure)


def _flatten(structure) -> list:
    out: list = []
    _map(out.append, structure)
    return out


def _key(tensor):
    layer, node_index, tensor_index = tuple(tensor._keras_history)[:3]
    return id(layer), node_index, tensor_index


def _first_attr(obj, *names):
    for name in names:
        if hasattr(obj, name):
            return getattr(obj, name)
    raise AttributeError(names[0])


def _node_parts(node):
    """(operation, args, kwargs, outputs) for a Keras 3 or a tf-keras node."""
    if hasattr(node, "arguments"):  # Keras 3
        return node.operation, node.arguments.args, node.arguments.kwargs, node.outputs
    return node.layer, node.call_args, node.call_kwargs, node.outputs


class Rebuilder:
    def __init__(self, direction: Direction):
        self.d = direction
        self.K = direction.target()
        self.L = self.K.layers
        self.made: dict[int, _Made] = {}
        self.names: set[str] = set()

    # ---- errors ----------------------------------------------------------------------------
    def _fail(self, layer, problem: str, fix: str):
        cls = type(layer).__name__
        raise self.d.error(f"layer '{getattr(layer, 'name', '?')}' ({cls}) cannot be carried to "
                           f"{self.d.target_name}: {problem}", fix)

    def _unique(self, name: str) -> str:
        base, i = name, 0
        while name in self.names:
            i += 1
            name = f"{base}_{i}"
        self.names.add(name)
        return name

    # ---- models ------------------------------------------------------------------------------
    def model(self, src):
        outer, self.names = self.names, {layer.name for layer in getattr(src, "layers", [])}
        try:
            return self._model(src)
        finally:
            self.names = outer

    def _model(self, src):
        if not getattr(src, "inputs", None):
            raise self.d.error(f"model '{src.name}' has no known input shape",
                               "build it with an Input layer (or call model.build) before saving")
        if type(src).__name__ == "Sequential":
            return self._sequential(src)
        if hasattr(src, "_nodes_by_depth"):
            return self._functional(src)
        raise self.d.error(f"model '{src.name}' ({type(src).__name__}) is a subclassed model",
                           "rebuild it as a functional or Sequential model")

    def _input(self, src_tensor):
        layer = src_tensor._keras_history[0]
        config = self._translate(layer, "InputLayer", _plain(layer.get_config()))
        made = self.L.InputLayer.from_config(config)
        return made.output

    def _sequential(self, src):
        parts = [self._layer(layer) for layer in src.layers]
        x = inp = self._input(src.inputs[0])
        if all(p.layer is not None and p.post is None for p in parts):
            dst = self.K.Sequential([inp._keras_history[0]] + [p.layer for p in parts], name=src.name)
            for layer, part in zip(src.layers, parts):
                self._copy_weights(layer, part)
        else:
            for layer in src.layers:
                x = self._apply(layer, [x], {})
            dst = self.K.Model(inp, x, name=src.name)
        dst.trainable = src.trainable
        return dst

    def _functional(self, src):
        tensors: dict = {}
        for t in _flatten(src.inputs):
            tensors[_key(t)] = self._input(t)
        lookup = lambda v: tensors[_key(v)] if _is_tensor(v) else v  # noqa: E731
        for depth in sorted(src._nodes_by_depth, reverse=True):
            for node in src._nodes_by_depth[depth]:
                op, args, kwargs, outputs = _node_parts(node)
                if type(op).__name__ == "InputLayer":
                    continue
                dst_args = _map(lookup, list(args))
                dst_kwargs = {k: _map(lookup, v) for k, v in (kwargs or {}).items() if v is not None}
                out = self._apply(op, dst_args, dst_kwargs)
                src_out, dst_out = _flatten(outputs), _flatten(out)
                if len(src_out) != len(dst_out):
                    self._fail(op, "output count changed", "report this model")
                for s, d in zip(src_out, dst_out):
                    tensors[_key(s)] = d
        in_struct = _first_attr(src, "_inputs_struct", "_nested_inputs")
        out_struct = _first_attr(src, "_outputs_struct", "_nested_outputs")
        dst = self.K.Model(_map(lookup, in_struct), _map(lookup, out_struct), name=src.name)
        dst.trainable = src.trainable
        return dst

    # ---- nodes -------------------------------------------------------------------------------
    def _apply(self, op, args, kwargs):
        if not self._is_layer(op) or type(op).__name__ in ("TFOpLambda", "SlicingOpLambda"):
            return self._apply_op(op, args, kwargs)
        part = self._layer(op)
        name = op.name
        try:
            if part.layer is None:
                return part.post(self.L, args[0], self._unique(name))
            out = part.layer(*args, **kwargs)
        except EdgepruneError:
            raise
        except Exception as e:  # noqa: BLE001 - any Keras failure becomes one clear line
            self._fail(op, f"calling it failed ({str(e).splitlines()[0][:200]})",
                       "replace the layer with standard Keras layers")
        self._copy_weights(op, part)
        if part.post is not None:
            out = part.post(self.L, out, self._unique(name))
        return out

    def _apply_op(self, op, args, kwargs):
        key = getattr(op, "symbol", None) or type(op).__name__
        rule = OPS.get(key)
        args = list(args) + [kwargs[k] for k in ("y",) if k in kwargs]
        out = rule(self.L, args, self._unique(op.name)) if rule else None
        if out is None:
            self._fail(op, f"the graph op '{key}' with these arguments has no standard-layer form",
                       "express it with Keras layers (e.g. Add, Multiply, Rescaling)")
        return out

    def _is_layer(self, op) -> bool:
        return hasattr(op, "get_weights") and hasattr(op, "trainable_weights")

    def _layer(self, src) -> _Made:
        if id(src) in self.made:
            return self.made[id(src)]
        if hasattr(src, "layers") and getattr(src, "inputs", None) is not None and (
                type(src).__name__ in ("Functional", "Sequential", "Model")):
            part = _Made(layer=self.model(src), weights_done=True, is_model=True)
        else:
            part = self._make(src)
        self.made[id(src)] = part
        return part

    def _make(self, src) -> _Made:
        cls = type(src).__name__
        if not type(src).__module__.startswith(self.d.source_prefixes):
            raise self.d.error(f"layer '{src.name}' is a custom class '{cls}' "
                               f"({type(src).__module__})",
                               f"replace it with standard Keras layers; {self.d.target_name} "
                               "could only load it with custom_objects")
        target_cls = getattr(self.L, cls, None)
        if target_cls is None:
            self._fail(src, f"{self.d.target_name} has no '{cls}' layer",
                       "replace it with layers both Keras versions have")
        config = self._translate(src, cls, _plain(src.get_config()))
        post = None
        act = config.get("activation")
        if isinstance(act, str) and act in self.d.activations:
            native, post = self.d.activations[act]
            config["activation"] = native or "linear"
            if cls == "Activation" and post is not None:
                return _Made(layer=None, post=post)
        elif isinstance(act, dict):
            self._fail(src, f"activation {act.get('class_name')} is a custom function",
                       "use a built-in activation name")
        try:
            layer = target_cls.from_config(config)
        except Exception as e:  # noqa: BLE001
            keys = self._rejected_keys(target_cls, config)
            what = (f"{self.d.target_name} {cls} does not accept config "
                    + ", ".join(f"key '{k}'={config[k]!r}" for k in keys) if keys
                    else f"its config was rejected ({str(e).splitlines()[0][:300]})")
            self._fail(src, what, f"set {'that option' if keys else 'its options'} to the default in the Keras "
                       "that wrote the model and re-save it, or report this layer to edgeprune")
        return _Made(layer=layer, post=post)

    @staticmethod
    def _rejected_keys(target_cls, config: dict) -> list[str]:
        """The config keys whose removal alone makes the target accept the config."""
        found = []
        for key in config:
            if key == "name":
                continue
            try:
                target_cls.from_config({k: v for k, v in config.items() if k != key})
            except Exception:  # noqa: BLE001
                continue
            found.append(key)
        return found

    def _translate(self, src, cls: str, config: dict) -> dict:
        for rule in key_rules(cls, self.d.edits):
            if rule.applies(cls):
                try:
                    rule.apply(config)
                except RuleError as e:
                    self._fail(src, str(e), "set it to its default before carrying the model")
        for key in ("layer", "backward_layer"):  # wrappers (Bidirectional): the wrapped layers' configs
            inner = config.get(key)
            if isinstance(inner, dict) and isinstance(inner.get("config"), dict) and "class_name" in inner:
                config[key] = dict(inner, config=self._translate(src, inner["class_name"], inner["config"]))
        return config

    def _copy_weights(self, src, part: _Made) -> None:
        if part.weights_done or part.layer is None:
            return
        values = src.get_weights()
        target = part.layer.weights
        want = [tuple(w.shape) for w in target]
        have = [tuple(v.shape) for v in values]
        if want != have:
            self._fail(src, f"weights do not line up (source {have}, target {want})",
                       "report this layer; it needs a weight-order rule")
        if values:
            part.layer.set_weights(values)
        part.weights_done = True
