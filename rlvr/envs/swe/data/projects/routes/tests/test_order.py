import pytest

from routes import CycleError, Graph, connected_components, topological_order


def test_topological_order_prefers_smallest_ready():
    g = Graph(directed=True)
    for u, v in [("shirt", "tie"), ("tie", "jacket"), ("pants", "shoes"), ("pants", "belt"), ("belt", "jacket"),
                 ("socks", "shoes")]:
        g.add_edge(u, v)
    assert topological_order(g) == ["pants", "belt", "shirt", "socks", "shoes", "tie", "jacket"]


def test_topological_order_detects_cycles():
    g = Graph(directed=True)
    g.add_edge(1, 2)
    g.add_edge(2, 3)
    g.add_edge(3, 1)
    with pytest.raises(CycleError):
        topological_order(g)


def test_connected_components():
    g = Graph()
    g.add_edge(5, 6)
    g.add_edge(1, 2)
    g.add_edge(2, 3)
    g.add_node(4)
    assert connected_components(g) == [[1, 2, 3], [4], [5, 6]]
