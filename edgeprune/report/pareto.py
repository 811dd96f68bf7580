"""Pareto fronts: which points no other point beats on both cost and accuracy."""
from __future__ import annotations


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points (cost, accuracy) that no other point dominates.

    A point is dominated when another has cost <= and accuracy >=, and is strictly better in one.
    Returned in increasing cost.
    """
    front = []
    for i, (ci, ai) in enumerate(points):
        dominated = any((cj <= ci and aj >= ai) and (cj < ci or aj > ai)
                        for j, (cj, aj) in enumerate(points) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))
