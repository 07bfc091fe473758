"""Traversal and shortest paths."""

import heapq
from collections import deque


def bfs_order(graph, start):
    """Nodes in breadth-first order from ``start`` (neighbours visited in sorted order)."""
    seen = {start}
    order = []
    queue = deque([start])
    while queue:
        node = queue.popleft()
        order.append(node)
        for nbr in graph.neighbors(node):
            if nbr not in seen:
                seen.add(nbr)
                queue.append(nbr)
    return order


def hops(graph, start, goal):
    """Fewest edges from ``start`` to ``goal``, or -1 when unreachable."""
    if start == goal:
        return 0
    dist = {start: 0}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nbr in graph.neighbors(node):
            if nbr not in dist:
                dist[nbr] = dist[node] + 1
                if nbr == goal:
                    return dist[nbr]
                queue.append(nbr)
    return -1


def dijkstra(graph, source):
    """Shortest distances and predecessors from ``source``: ``(dist, prev)`` dictionaries."""
    dist = {source: 0}
    prev = {}
    heap = [(0, source)]
    done = set()
    while heap:
        d, node = heapq.heappop(heap)
        if node in done:
            continue
        done.add(node)
        for nbr in graph.neighbors(node):
            candidate = d + graph.weight(node, nbr)
            if nbr not in dist or candidate < dist[nbr]:
                dist[nbr] = candidate
                prev[nbr] = node
                heapq.heappush(heap, (candidate, nbr))
    return dist, prev


def shortest_path(graph, source, target):
    """``(cost, [source, ..., target])`` of a cheapest path, or ``(None, [])`` when unreachable."""
    if source not in graph or target not in graph:
        raise KeyError("unknown node")
    dist, prev = dijkstra(graph, source)
    if target not in dist:
        return None, []
    path = [target]
    while path[-1] != source:
        path.append(prev[path[-1]])
    path.reverse()
    return dist[target], path
