from geometry import orientation, segments_intersect


def test_orientation():
    assert orientation((0, 0), (1, 0), (1, 1)) == 1
    assert orientation((0, 0), (1, 0), (1, -1)) == -1
    assert orientation((0, 0), (1, 1), (2, 2)) == 0


def test_crossing_segments():
    assert segments_intersect((0, 0), (2, 2), (0, 2), (2, 0))


def test_disjoint_segments():
    assert not segments_intersect((0, 0), (1, 1), (2, 2), (3, 1))
    assert not segments_intersect((0, 0), (1, 0), (0, 1), (1, 1))


def test_touching_and_collinear():
    assert segments_intersect((0, 0), (2, 0), (2, 0), (3, 1))
    assert segments_intersect((0, 0), (3, 0), (1, 0), (5, 0))
    assert not segments_intersect((0, 0), (1, 0), (2, 0), (3, 0))
