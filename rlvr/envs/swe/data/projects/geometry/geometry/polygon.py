"""Simple polygons given as lists of (x, y) vertices."""

import math


def polygon_area(points):
    """Area by the shoelace formula (always non-negative)."""
    n = len(points)
    if n < 3:
        return 0.0
    total = 0.0
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        total += x1 * y2 - x2 * y1
    return abs(total) / 2


def perimeter(points):
    n = len(points)
    return sum(math.dist(points[i], points[(i + 1) % n]) for i in range(n)) if n > 1 else 0.0


def centroid(points):
    """Centroid of the polygon's area."""
    n = len(points)
    signed = 0.0
    cx = cy = 0.0
    for i in range(n):
        x1, y1 = points[i]
        x2, y2 = points[(i + 1) % n]
        step = x1 * y2 - x2 * y1
        signed += step
        cx += (x1 + x2) * step
        cy += (y1 + y2) * step
    if signed == 0:
        raise ValueError("degenerate polygon has no centroid")
    signed /= 2
    return (cx / (6 * signed), cy / (6 * signed))


def is_convex(points):
    """True when every turn along the boundary goes the same way (collinear points allowed)."""
    n = len(points)
    if n < 3:
        return False
    sign = 0
    for i in range(n):
        (x1, y1), (x2, y2), (x3, y3) = points[i], points[(i + 1) % n], points[(i + 2) % n]
        turn = (x2 - x1) * (y3 - y2) - (y2 - y1) * (x3 - x2)
        if turn != 0:
            if sign == 0:
                sign = 1 if turn > 0 else -1
            elif (turn > 0) != (sign > 0):
                return False
    return sign != 0


def point_in_polygon(px, py, points):
    """Ray casting: whether (px, py) is strictly inside the polygon."""
    inside = False
    n = len(points)
    j = n - 1
    for i in range(n):
        xi, yi = points[i]
        xj, yj = points[j]
        if (yi > py) != (yj > py):
            x_cross = xi + (py - yi) * (xj - xi) / (yj - yi)
            if px < x_cross:
                inside = not inside
        j = i
    return inside
