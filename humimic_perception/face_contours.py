"""Contours of the 478-point face mesh (lips, eyes, brows, face oval, irises) as landmark index
pairs, derived from the canonical face mesh's triangles (humimic_perception.head_pose).

- face oval: the mesh's boundary, the edges that belong to one triangle only;
- lips (outer and inner), eyes, brows (upper and lower edge): shortest paths along mesh edges
  (edge length = distance in the canonical model) through a few anchor landmarks (CONTOUR_ANCHORS);
- irises: the ring of each iris's four edge points (469-472 right, 474-477 left), which are not
  part of the 468-vertex mesh.
"""
from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Dict, List, Sequence, Set, Tuple

import numpy as np

from humimic_perception.head_pose import canonical_face_model, canonical_triangles

#: Contour name -> landmarks it passes through, in order (first = last for a closed contour).
CONTOUR_ANCHORS: Dict[str, Tuple[int, ...]] = {
    "lips_outer": (61, 39, 0, 269, 291, 17, 61),
    "lips_inner": (78, 13, 308, 14, 78),
    "right_eye": (33, 159, 133, 145, 33),
    "left_eye": (263, 386, 362, 374, 263),
    "right_brow_upper": (70, 107),
    "right_brow_lower": (46, 52, 55),
    "left_brow_upper": (300, 336),
    "left_brow_lower": (276, 282, 285),
}
#: The four edge points of each iris, in order around it.
IRIS_RINGS = ((469, 470, 471, 472), (474, 475, 476, 477))

Edge = Tuple[int, int]


def _edge(a: int, b: int) -> Edge:
    return (a, b) if a < b else (b, a)


def _edges(triangles: np.ndarray) -> Counter:
    """Each undirected edge with the number of triangles it belongs to."""
    counts: Counter = Counter()
    for a, b, c in triangles.tolist():
        counts.update((_edge(a, b), _edge(b, c), _edge(c, a)))
    return counts


def _shortest_path(neighbours: Dict[int, Set[int]], vertices: np.ndarray, start: int, goal: int) -> List[int]:
    """Dijkstra along mesh edges; ValueError when the mesh does not connect start and goal."""
    best, previous, queue = {start: 0.0}, {}, [(0.0, start)]
    while queue:
        cost, vertex = heapq.heappop(queue)
        if vertex == goal:
            break
        if cost > best[vertex]:
            continue
        for other in neighbours[vertex]:
            total = cost + float(np.linalg.norm(vertices[vertex] - vertices[other]))
            if total < best.get(other, np.inf):
                best[other], previous[other] = total, vertex
                heapq.heappush(queue, (total, other))
    if goal not in best:
        raise ValueError(f"the face mesh does not connect landmarks {start} and {goal}")
    path = [goal]
    while path[-1] != start:
        path.append(previous[path[-1]])
    return path[::-1]


def _through(neighbours: Dict[int, Set[int]], vertices: np.ndarray, anchors: Sequence[int]) -> List[Edge]:
    pairs = []
    for start, goal in zip(anchors, anchors[1:]):
        path = _shortest_path(neighbours, vertices, start, goal)
        pairs.extend(zip(path, path[1:]))
    return pairs


@lru_cache(maxsize=1)
def contours() -> Dict[str, np.ndarray]:
    """Contour name -> (K, 2) landmark index pairs (CONTOUR_ANCHORS, face_oval, right/left_iris)."""
    triangles, vertices = canonical_triangles(), canonical_face_model()
    counts = _edges(triangles)
    neighbours: Dict[int, Set[int]] = defaultdict(set)
    for a, b in counts:
        neighbours[a].add(b)
        neighbours[b].add(a)
    out = {name: np.array(_through(neighbours, vertices, anchors)) for name, anchors in CONTOUR_ANCHORS.items()}
    out["face_oval"] = np.array(sorted(edge for edge, n in counts.items() if n == 1))
    for name, ring in zip(("right_iris", "left_iris"), IRIS_RINGS):
        out[name] = np.array(list(zip(ring, ring[1:] + ring[:1])))
    return out


@lru_cache(maxsize=1)
def contour_pairs() -> np.ndarray:
    """All contours' landmark index pairs, (K, 2), each undirected pair once."""
    return np.array(sorted({_edge(int(a), int(b)) for pairs in contours().values() for a, b in pairs}))
