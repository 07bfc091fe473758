import pytest

from routes import Graph, bfs_order, dijkstra, hops, shortest_path


def city():
    g = Graph()
    for u, v, w in [("A", "B", 4), ("A", "C", 1), ("C", "B", 2), ("B", "D", 1), ("C", "D", 5), ("D", "E", 3)]:
        g.add_edge(u, v, w)
    g.add_node("Z")
    return g


def test_bfs_order():
    assert bfs_order(city(), "A") == ["A", "B", "C", "D", "E"]


def test_hops():
    g = city()
    assert hops(g, "A", "A") == 0
    assert hops(g, "A", "D") == 2
    assert hops(g, "A", "E") == 3
    assert hops(g, "A", "Z") == -1


def test_dijkstra_distances():
    dist, prev = dijkstra(city(), "A")
    assert dist == {"A": 0, "B": 3, "C": 1, "D": 4, "E": 7}
    assert prev["B"] == "C"


def test_shortest_path():
    assert shortest_path(city(), "A", "E") == (7, ["A", "C", "B", "D", "E"])
    assert shortest_path(city(), "A", "A") == (0, ["A"])


def test_shortest_path_unreachable_and_unknown():
    assert shortest_path(city(), "A", "Z") == (None, [])
    with pytest.raises(KeyError):
        shortest_path(city(), "A", "Q")


def test_directed_paths_follow_direction():
    g = Graph(directed=True)
    g.add_edge(1, 2, 1)
    g.add_edge(2, 3, 1)
    assert shortest_path(g, 1, 3) == (2, [1, 2, 3])
    assert shortest_path(g, 3, 1) == (None, [])
