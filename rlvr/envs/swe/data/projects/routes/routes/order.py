"""Orderings and components."""


class CycleError(ValueError):
    """The directed graph has a cycle, so it has no topological order."""


def topological_order(graph):
    """Kahn's algorithm; among ready nodes the smallest comes first."""
    indegree = {n: 0 for n in graph.nodes()}
    for n in graph.nodes():
        for m in graph.neighbors(n):
            indegree[m] += 1
    ready = sorted(n for n, d in indegree.items() if d == 0)
    order = []
    while ready:
        node = ready.pop(0)
        order.append(node)
        for m in graph.neighbors(node):
            indegree[m] -= 1
            if indegree[m] == 0:
                ready.append(m)
                ready.sort()
    if len(order) != len(indegree):
        raise CycleError("graph has a cycle")
    return order


def connected_components(graph):
    """Components of an undirected graph as sorted lists, ordered by their smallest node."""
    seen = set()
    components = []
    for start in graph.nodes():
        if start in seen:
            continue
        stack = [start]
        seen.add(start)
        component = []
        while stack:
            node = stack.pop()
            component.append(node)
            for nbr in graph.neighbors(node):
                if nbr not in seen:
                    seen.add(nbr)
                    stack.append(nbr)
        components.append(sorted(component))
    return components
