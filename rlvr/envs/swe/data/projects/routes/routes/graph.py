"""Weighted graphs with sorted, deterministic neighbour order."""


class Graph:
    def __init__(self, directed=False):
        self.directed = directed
        self._adj = {}

    def add_node(self, node):
        self._adj.setdefault(node, {})

    def add_edge(self, u, v, weight=1):
        if weight < 0:
            raise ValueError("edge weights must be non-negative")
        self.add_node(u)
        self.add_node(v)
        self._adj[u][v] = weight
        if not self.directed:
            self._adj[v][u] = weight

    def nodes(self):
        return sorted(self._adj)

    def neighbors(self, node):
        return sorted(self._adj[node])

    def weight(self, u, v):
        return self._adj[u][v]

    def __contains__(self, node):
        return node in self._adj

    def edge_count(self):
        total = sum(len(nbrs) for nbrs in self._adj.values())
        return total if self.directed else total // 2
