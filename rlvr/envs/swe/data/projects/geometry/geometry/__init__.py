"""geometry: plane geometry helpers."""

from geometry.polygon import centroid, is_convex, perimeter, point_in_polygon, polygon_area
from geometry.rect import Rect
from geometry.segments import orientation, segments_intersect
from geometry.vector import Vector

__all__ = [
    "Rect", "Vector", "centroid", "is_convex", "orientation", "perimeter", "point_in_polygon", "polygon_area",
    "segments_intersect",
]
