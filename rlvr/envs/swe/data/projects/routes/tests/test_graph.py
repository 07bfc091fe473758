import pytest

from routes import Graph


def test_undirected_edges_are_symmetric():
    g = Graph()
    g.add_edge("a", "b", 3)
    assert g.weight("b", "a") == 3
    assert g.neighbors("a") == ["b"] and g.neighbors("b") == ["a"]
    assert g.edge_count() == 1


def test_directed_edges():
    g = Graph(directed=True)
    g.add_edge("a", "b")
    g.add_edge("b", "c")
    assert g.neighbors("b") == ["c"] and g.neighbors("c") == []
    assert g.edge_count() == 2


def test_rejects_negative_weight():
    with pytest.raises(ValueError):
        Graph().add_edge(1, 2, -1)


def test_nodes_sorted():
    g = Graph()
    g.add_edge(3, 1)
    g.add_node(2)
    assert g.nodes() == [1, 2, 3] and 2 in g
