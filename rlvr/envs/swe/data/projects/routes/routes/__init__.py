"""routes: graph algorithms for route planning."""

from routes.graph import Graph
from routes.order import CycleError, connected_components, topological_order
from routes.paths import bfs_order, dijkstra, hops, shortest_path

__all__ = ["CycleError", "Graph", "bfs_order", "connected_components", "dijkstra", "hops", "shortest_path",
           "topological_order"]
