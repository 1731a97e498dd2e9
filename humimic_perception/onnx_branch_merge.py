"""Merge parallel, identically built branches of a convolutional graph into one branch of grouped ops.

The attention face mesh runs two eye sub-networks of the same architecture (different weights) on
two crops of one feature map, each of ~80 small operators. One network over the channel-concatenated
crops, whose convolutions have K times the groups, does the same arithmetic in half the operator
calls (~25 us of the mesh's ~0.95 ms on one AVX core):

* a branch is the region grown forward from a root value through Conv (constant weights), PRelu
  (constant per-channel slope), Relu, MaxPool, AveragePool, Add, Sum, Mul, Max, Min (all operands
  in the region) and Pad (zero channels appended), until a node takes anything else;
* roots whose regions have the same canonical form (operators, attributes, weight shapes, wiring),
  do not overlap and do not depend on each other are merged: one Concat of the roots along the
  channels, each node once with its weights concatenated along the output channels (Conv groups,
  PRelu slopes), Pad as a grouped 1x1 Conv of identity and zero weights;
* a Split restores each value that is used outside its region, under its original name.

The result is exact up to float summation order (a grouped Conv sums the same products).
"""
from __future__ import annotations

from collections import defaultdict, deque
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import onnx
from onnx import helper, numpy_helper

from humimic_perception.onnx_graph import appended_channels, attributes, consumers

#: Regions smaller than this are not worth a Concat and Splits.
MIN_NODES = 8
ELEMENTWISE = {"Add", "Sum", "Mul", "Max", "Min"}
CHANNELWISE = {"Relu", "MaxPool", "AveragePool"}


class _Graph:
    """Lookups over one graph: producers, consumers, constants, shapes."""

    def __init__(self, graph: onnx.GraphProto, shapes: Dict[str, List[int]]) -> None:
        self.graph, self.shapes = graph, shapes
        self.constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.producer = {out: node for node in graph.node for out in node.output}
        self.consumers = consumers(graph)
        self.outputs = {value.name for value in graph.output}
        self.order = {node.output[0]: index for index, node in enumerate(graph.node)}

    def nchw(self, name: str) -> bool:
        shape = self.shapes.get(name)
        return shape is not None and len(shape) == 4 and min(shape[1:]) > 0

    def mergeable(self, node: onnx.NodeProto, inside: set) -> bool:
        """Whether the node joins a region holding the values ``inside``."""
        op, inputs = node.op_type, list(node.input)
        if len(node.output) != 1 or not self.nchw(node.output[0]) or inputs[0] not in inside:
            return False
        if op == "Conv":
            return all(name in self.constants for name in inputs[1:]) and self.constants[inputs[1]].ndim == 4
        if op == "PRelu":
            slope = self.constants.get(inputs[1])
            return slope is not None and slope.size == self.shapes[inputs[0]][1]
        if op == "Pad":
            return appended_channels(node, self.constants) > 0
        if op in CHANNELWISE:
            return len(inputs) == 1
        return op in ELEMENTWISE and all(name in inside for name in inputs)

    def region(self, root: str) -> List[onnx.NodeProto]:
        """Nodes of the region grown from ``root``, in graph order."""
        inside, nodes = {root}, []
        queue = deque(self.consumers.get(root, []))
        seen = set()
        while queue:
            node = queue.popleft()
            if node.output[0] in seen:
                continue
            if all(not name or name in inside or name in self.constants for name in node.input) \
                    and self.mergeable(node, inside):
                seen.add(node.output[0])
                nodes.append(node)
                inside.add(node.output[0])
                queue.extend(self.consumers.get(node.output[0], []))
        return sorted(nodes, key=lambda node: self.order[node.output[0]])

    def form(self, root: str, nodes: Sequence[onnx.NodeProto]) -> tuple:
        """Canonical form of a region: what must match for two regions to merge."""
        position = {root: -1, **{node.output[0]: index for index, node in enumerate(nodes)}}

        def operand(name: str) -> object:
            return position[name] if name in position else ("const", self.constants[name].shape if name else ())

        return tuple((node.op_type, tuple(sorted((name, str(value)) for name, value in attributes(node).items())),
                      tuple(operand(name) for name in node.input), tuple(self.shapes[node.output[0]]))
                     for node in nodes)

    def ancestors(self, name: str) -> set:
        """Values the value depends on (itself included)."""
        found, stack = set(), [name]
        while stack:
            value = stack.pop()
            if value in found:
                continue
            found.add(value)
            producer = self.producer.get(value)
            if producer is not None:
                stack.extend(producer.input)
        return found


def _groups(g: _Graph) -> List[Tuple[List[str], List[List[onnx.NodeProto]]]]:
    """Roots whose regions merge (largest regions first), with their regions."""
    candidates = []
    for name in g.shapes:
        if g.nchw(name) and name not in g.constants:
            nodes = g.region(name)
            if len(nodes) >= MIN_NODES:
                candidates.append((name, nodes))
    candidates.sort(key=lambda item: (-len(item[1]), g.order.get(item[0], -1)))
    by_form: Dict[tuple, List[Tuple[str, List[onnx.NodeProto]]]] = defaultdict(list)
    for name, nodes in candidates:
        by_form[g.form(name, nodes)].append((name, nodes))
    taken: set = set()
    groups = []
    for name, nodes in candidates:
        members = [(root, region) for root, region in by_form[g.form(name, nodes)]
                   if root not in taken and not {n.output[0] for n in region} & taken]
        if len(members) < 2 or members[0][0] != name:
            continue
        owned = [{n.output[0] for n in region} for _, region in members]
        if any(set().union(*owned[:k], *owned[k + 1:]) & (g.ancestors(root) | {n.output[0] for n in region})
               for k, (root, region) in enumerate(members)):
            continue  # overlapping or dependent regions
        groups.append(([root for root, _ in members], [region for _, region in members]))
        for root, region in members:
            taken |= {root} | {n.output[0] for n in region}
    return groups


def _merge(g: _Graph, roots: List[str], regions: List[List[onnx.NodeProto]],
           new: List[onnx.NodeProto], initializers: List[onnx.TensorProto]) -> None:
    """Nodes computing all regions at once (appended to ``new``)."""
    count = len(roots)
    merged = {roots[0]: roots[0] + "/merged"}  # branch 0 value -> value of all branches
    new.append(helper.make_node("Concat", roots, [merged[roots[0]]], name=merged[roots[0]], axis=1))
    name_of = {root: roots[0] for root in roots}  # branch value -> branch 0 value

    def constant(value: np.ndarray, name: str) -> str:
        initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    for nodes in zip(*regions):
        first = nodes[0]
        out = first.output[0] + "/merged"
        for node in nodes:
            name_of[node.output[0]] = first.output[0]
        merged[first.output[0]] = out
        x = [merged[name_of[name]] for name in first.input if name in name_of]
        attrs = attributes(first)
        if first.op_type == "Conv":
            weights = [np.concatenate([g.constants[node.input[i]] for node in nodes])
                       for i in range(1, len(first.input))]
            attrs["group"] = attrs.get("group", 1) * count
            inputs = x + [constant(w, f"{out}/{i}") for i, w in enumerate(weights)]
        elif first.op_type == "PRelu":
            slopes = np.concatenate([g.constants[node.input[1]].reshape(-1) for node in nodes])
            inputs = x + [constant(slopes.reshape(-1, 1, 1), f"{out}/slope")]
        elif first.op_type == "Pad":
            channels, extra = g.shapes[first.input[0]][1], appended_channels(first, g.constants)
            block = np.concatenate([np.eye(channels), np.zeros((extra, channels))]).astype(np.float32)
            pad = constant(np.tile(block, (count, 1))[:, :, None, None], f"{out}/pad")
            new.append(helper.make_node("Conv", x + [pad], [out], name=out, group=count, kernel_shape=[1, 1]))
            continue
        else:
            inputs = x
        new.append(helper.make_node(first.op_type, inputs, [out], name=out, **attrs))
    inside = [{n.output[0] for n in region} for region in regions]
    for values in zip(*[[node.output[0] for node in region] for region in regions]):
        if any(v in g.outputs or any(c.output[0] not in inside[k] for c in g.consumers.get(v, []))
               for k, v in enumerate(values)):
            new.append(helper.make_node("Split", [merged[values[0]]], list(values), name=values[0] + "/split", axis=1))


def _topological(nodes: List[onnx.NodeProto], available: set) -> List[onnx.NodeProto]:
    """The nodes in an order where each comes after its inputs' producers (stable otherwise)."""
    waiting: Dict[str, List[int]] = defaultdict(list)
    missing = []
    for index, node in enumerate(nodes):
        needs = {name for name in node.input if name and name not in available}
        missing.append(len(needs))
        for name in needs:
            waiting[name].append(index)
    ready = deque(index for index, count in enumerate(missing) if count == 0)
    order = []
    while ready:
        index = ready.popleft()
        order.append(nodes[index])
        for out in nodes[index].output:
            for later in waiting.pop(out, []):
                missing[later] -= 1
                if missing[later] == 0:
                    ready.append(later)
    if len(order) != len(nodes):
        raise ValueError("branch merge left a cycle or an undefined input")
    return order


def merge_parallel_branches(model: onnx.ModelProto, shapes: Dict[str, List[int]]) -> Optional[onnx.ModelProto]:
    """A copy of ``model`` with its mergeable parallel branches merged, or None when it has none.
    ``shapes``: the inferred shape of every value."""
    g = _Graph(model.graph, shapes)
    groups = _groups(g)
    if not groups:
        return None
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    removed = {node.output[0] for _, regions in groups for region in regions for node in region}
    nodes = [node for node in graph.node if node.output[0] not in removed]
    initializers: List[onnx.TensorProto] = []
    for roots, regions in groups:
        _merge(g, roots, regions, nodes, initializers)
    graph.initializer.extend(initializers)
    available = {i.name for i in graph.initializer} | {v.name for v in graph.input}
    ordered = _topological(nodes, available)
    del graph.node[:]
    graph.node.extend(ordered)
    used = {name for node in ordered for name in node.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return out
