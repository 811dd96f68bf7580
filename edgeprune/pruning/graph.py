"""Read a Keras model into a graph of channel *atoms* and compute which atoms must go together.

Every layer that creates channels (Conv, Dense, the model input, ...) creates one atom per output
channel.  Each tensor carries, along its last axis, the list of atoms its channels come from:
channel-preserving layers pass the list through, Concatenate joins lists, Flatten tiles the list
once per spatial position, and elementwise merges (Add, Multiply, ...) *unite* the atoms at equal
positions.  After propagation, the union-find classes of atoms are the prunable channels: removing
a class removes every position, in every tensor, that carries one of its atoms.  This is the
DepGraph idea expressed on Keras configs, and it makes residual, concat, depthwise and flatten
couplings fall out of one mechanism instead of special cases.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from edgeprune.errors import UnsupportedLayerError
from edgeprune.keras import keras
from edgeprune.pruning.rules import rule_for

TensorKey = tuple  # (layer_name, node_index, tensor_index)


class UnionFind:
    def __init__(self):
        self.parent: list[int] = []

    def add(self, n: int) -> np.ndarray:
        start = len(self.parent)
        self.parent.extend(range(start, start + n))
        return np.arange(start, start + n, dtype=np.int64)

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(int(a)), self.find(int(b))
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class NodeInfo:
    """One call of one layer: which tensors went in, which came out, and their channel atoms."""

    layer: str
    index: int
    inputs: list[TensorKey]
    outputs: list[TensorKey]
    input_shapes: list[tuple]
    output_shapes: list[tuple]
    kwargs: dict = field(default_factory=dict)


@dataclass
class ChannelGraph:
    model: "keras.Model"            # flat functional model the graph describes
    nodes: list[NodeInfo]           # topological order
    atoms_of: dict                  # TensorKey -> np.ndarray of atom ids (last-axis positions)
    atom_source: list[tuple]        # atom id -> (layer name, channel index)
    uf: UnionFind
    pinned: dict                    # atom id -> reason it may not be removed
    source_atoms: dict              # layer name -> np.ndarray of the atoms it creates
    protected: set
    kept_layers: dict = field(default_factory=dict)  # layer the engine could not follow -> why
    opaque: set = field(default_factory=set)          # layers kept intact on both sides (no surgery)
    pin_events: list = field(default_factory=list)    # (reason, atoms) for every pin, in order

    def __post_init__(self):
        self._layers = {l.name: l for l in self.model.layers}
        self._nodes_of: dict[str, list[NodeInfo]] = {}
        for n in self.nodes:
            self._nodes_of.setdefault(n.layer, []).append(n)

    def layer(self, name: str):
        return self._layers[name]

    def has_layer(self, name: str) -> bool:
        return name in self._layers

    def nodes_of(self, layer_name: str) -> list[NodeInfo]:
        return self._nodes_of.get(layer_name, [])

    def cls(self, atom: int) -> int:
        return self.uf.find(int(atom))

    def classes_of(self, atoms: np.ndarray) -> np.ndarray:
        return np.array([self.uf.find(int(a)) for a in atoms], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# building a flat functional model (nested sub-models inlined, Sequential made functional)


def is_flat(model) -> bool:
    """A functional model without nested sub-models whose layers are called only inside it, so
    node indices in its config equal the layers' node indices: it needs no flat copy."""
    if not getattr(model, "_is_graph_network", False) or isinstance(model, keras.Sequential):
        return False  # a Sequential config has no inbound nodes to read
    own = model._network_nodes
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            return False
        if not isinstance(layer, keras.layers.InputLayer) and any(
                f"{layer.name}_ib-{i}" not in own for i in range(len(layer._inbound_nodes))):
            return False
    return True


def flatten_model(model, copy: bool = True) -> "keras.Model":
    """A functional model equal to `model` with nested sub-models inlined and the same weights.

    Layer names are kept; the copy owns fresh layer objects (from_config), so its nodes are only
    its own and node indices in its config equal the layers' node indices.  With ``copy=False``
    a model that is already flat (:func:`is_flat`) is returned itself: rebuilding costs seconds
    on large or recurrent models.
    """
    if not model.built or not getattr(model, "inputs", None):
        raise UnsupportedLayerError(
            f"model '{model.name}' has no defined inputs",
            "build it with keras.Input(...) (or call it once on data) before pruning",
        )
    if not copy and is_flat(model):
        return model
    new_inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=_input_name(t)) for t in model.inputs]
    outputs = _retrace(model, new_inputs)
    traced = keras.Model(new_inputs, outputs, name=model.name)
    names = [l.name for l in traced.layers]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UnsupportedLayerError(
            f"layer names {sorted(dup)} occur in more than one nested sub-model",
            "give the layers unique names before pruning",
        )
    flat = keras.Model.from_config(traced.get_config())
    for layer in flat.layers:
        src = traced.get_layer(layer.name)
        if src.weights:
            layer.set_weights(src.get_weights())
    return flat


def _input_name(t) -> str:
    return t._keras_history.layer.name


def _key(t) -> tuple:
    h = t._keras_history
    return (h.layer.name, h.node_index, h.tensor_index)


def _retrace(model, inputs):
    """Call `model`'s layers on `inputs`, descending into nested functional models."""
    tmap = {_key(t): x for t, x in zip(model.inputs, inputs)}
    network_nodes = model._network_nodes
    depth_keys = sorted(model._nodes_by_depth.keys(), reverse=True)
    for depth in depth_keys:
        for node in model._nodes_by_depth[depth]:
            layer = node.layer
            if isinstance(layer, keras.layers.InputLayer):
                continue
            node_key = layer.name + "_ib-" + str(layer._inbound_nodes.index(node))
            if node_key not in network_nodes:
                continue

            def sub(x):
                return tmap[_key(x)] if hasattr(x, "_keras_history") else x

            args = tf.nest.map_structure(sub, node.call_args)
            kwargs = tf.nest.map_structure(sub, node.call_kwargs)
            if isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False):
                flat_in = tf.nest.flatten((args, kwargs))
                flat_in = [x for x in flat_in if tf.is_tensor(x) or hasattr(x, "shape")]
                out = _retrace(layer, flat_in)
            else:
                out = layer(*args, **kwargs)
            for t, o in zip(tf.nest.flatten(node.outputs), tf.nest.flatten(out)):
                tmap[_key(t)] = o
    outs = [tmap[_key(t)] for t in model.outputs]
    return outs if len(outs) > 1 else outs[0]


# --------------------------------------------------------------------------------------------
# node table from the flat model's config


def _node_table(model) -> list[NodeInfo]:
    cfg = model.get_config()
    nodes = []
    for entry in cfg["layers"]:
        name = entry["name"]
        layer = model.get_layer(name)
        for ni, inbound in enumerate(entry["inbound_nodes"]):
            if inbound and isinstance(inbound[0], str):  # TFOpLambda: one call written flat
                inbound = [inbound]
            inputs = [(n, int(i), int(t)) for n, i, t, *_ in inbound]
            kwargs = inbound[0][3] if inbound and len(inbound[0]) > 3 else {}
            inputs += [(v[0], int(v[1]), int(v[2])) for v in (kwargs or {}).values() if _is_tensor_ref(v)]
            node = layer._inbound_nodes[ni]
            outs = node.outputs if isinstance(node.outputs, (list, tuple)) else [node.outputs]
            in_tensors = node.keras_inputs
            nodes.append(NodeInfo(
                layer=name, index=ni, inputs=inputs,
                outputs=[(name, ni, k) for k in range(len(outs))],
                input_shapes=[tuple(t.shape) for t in in_tensors],
                output_shapes=[tuple(o.shape) for o in outs],
                kwargs=kwargs or {},
            ))
    return nodes


def _is_tensor_ref(v) -> bool:
    """A tensor named in a call's keyword arguments: [layer name, node index, tensor index(, kwargs)]."""
    return (isinstance(v, (list, tuple)) and len(v) in (3, 4) and isinstance(v[0], str)
            and all(isinstance(i, int) for i in v[1:3]))


def _topological(nodes: list[NodeInfo], input_keys: set) -> list[NodeInfo]:
    ready = set(input_keys)
    pending = list(nodes)
    ordered = []
    while pending:
        progressed = False
        rest = []
        for n in pending:
            if all(k in ready for k in n.inputs):
                ordered.append(n)
                ready.update(n.outputs)
                progressed = True
            else:
                rest.append(n)
        if not progressed:
            raise UnsupportedLayerError(f"could not order the graph at layer '{rest[0].layer}'", "report this model")
        pending = rest
    return ordered


def build_graph(model, protect=(), strict: bool = False) -> ChannelGraph:
    """Analyse `model` (Sequential, functional, nested) into a :class:`ChannelGraph`.

    `protect`: layer names or regexes whose output channels must be kept.  A layer the engine
    cannot follow (no rule, or its rule refuses this use) keeps its channels on both sides intact
    and is recorded in ``kept_layers``; with `strict` it stops the analysis instead.  A protected
    layer is never refused.
    """
    flat = flatten_model(model, copy=False)  # the graph never changes its model's weights for good
    patterns = [re.compile(p) for p in protect]
    protected = {l.name for l in flat.layers if any(p.fullmatch(l.name) for p in patterns)}
    nodes = _node_table(flat)
    input_keys = {(l.name, 0, 0) for l in flat.layers if isinstance(l, keras.layers.InputLayer)}
    nodes = _topological([n for n in nodes], input_keys)

    g = ChannelGraph(model=flat, nodes=nodes, atoms_of={}, atom_source=[], uf=UnionFind(),
                     pinned={}, source_atoms={}, protected=protected)
    ctx = PropagationContext(g)
    for layer in flat.layers:
        if isinstance(layer, keras.layers.InputLayer):
            g.atoms_of[(layer.name, 0, 0)] = rule_for(layer).propagate(ctx, layer, None, [])[0]
    for node in nodes:
        layer = g.layer(node.layer)
        rule = rule_for(layer)
        in_atoms = [g.atoms_of[k] for k in node.inputs]
        try:
            if rule is None:
                raise UnsupportedLayerError(
                    f"layer '{layer.name}' of type {type(layer).__name__} is not supported by the pruning engine",
                    f"protect it (--protect {layer.name}) to keep its channels intact, or remove it",
                )
            out_atoms = rule.propagate(ctx, layer, node, in_atoms)
        except UnsupportedLayerError as e:
            if strict and layer.name not in protected:
                raise
            if layer.name not in protected:
                g.kept_layers.setdefault(layer.name, e.problem)
            out_atoms = _opaque(ctx, layer, node, in_atoms)
        if layer.name in protected:
            for a in out_atoms:
                ctx.pin(a, f"protected layer '{layer.name}'")
        for key, atoms in zip(node.outputs, out_atoms):
            g.atoms_of[key] = np.asarray(atoms, dtype=np.int64)
    for t in flat.outputs:
        ctx.pin(g.atoms_of[_key(t)], "model output")
    return g


def _opaque(ctx, layer, node, in_atoms):
    """A layer whose channels stay as they are: nothing on either side may change."""
    reason = (f"protected layer '{layer.name}'" if layer.name in ctx.g.protected
              else f"layer '{layer.name}' the engine cannot follow")
    for a in in_atoms:
        ctx.pin(a, reason)
    outs = []
    for k, shape in enumerate(node.output_shapes):
        atoms = ctx.new_atoms(f"{layer.name}#{node.index}.{k}", int(shape[-1]) if len(shape) > 1 else 1)
        ctx.pin(atoms, reason)
        outs.append(atoms)
    ctx.g.opaque.add(layer.name)
    return outs


class PropagationContext:
    """What a layer rule may do while atoms propagate: make atoms, unite them, pin them."""

    def __init__(self, graph: ChannelGraph):
        self.g = graph

    def new_atoms(self, source: str, n: int) -> np.ndarray:
        atoms = self.g.uf.add(n)
        self.g.atom_source.extend((source, i) for i in range(n))
        self.g.source_atoms.setdefault(source, atoms)
        return atoms

    def source_atoms(self, layer_name: str, n: int) -> np.ndarray:
        """The atoms a weight layer creates; a shared layer reuses them on every call."""
        if layer_name in self.g.source_atoms:
            return self.g.source_atoms[layer_name]
        return self.new_atoms(layer_name, n)

    def unite(self, a: np.ndarray, b: np.ndarray) -> None:
        for x, y in zip(a, b):
            self.g.uf.union(int(x), int(y))

    def pin(self, atoms, reason: str) -> None:
        atoms = np.asarray(atoms, dtype=np.int64).ravel()
        self.g.pin_events.append((reason, atoms))
        for a in atoms.tolist():
            self.g.pinned.setdefault(a, reason)
