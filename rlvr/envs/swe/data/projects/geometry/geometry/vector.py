"""Immutable 2-D vectors."""

import math


class Vector:
    __slots__ = ("x", "y")

    def __init__(self, x, y):
        self.x = x
        self.y = y

    def __eq__(self, other):
        return isinstance(other, Vector) and self.x == other.x and self.y == other.y

    def __repr__(self):
        return f"Vector({self.x}, {self.y})"

    def __add__(self, other):
        return Vector(self.x + other.x, self.y + other.y)

    def __sub__(self, other):
        return Vector(self.x - other.x, self.y - other.y)

    def __mul__(self, k):
        return Vector(self.x * k, self.y * k)

    def dot(self, other):
        return self.x * other.x + self.y * other.y

    def cross(self, other):
        """z component of the 3-D cross product (positive when ``other`` is counter-clockwise)."""
        return self.x * other.y - self.y * other.x

    def length(self):
        return math.hypot(self.x, self.y)

    def normalized(self):
        n = self.length()
        if n == 0:
            raise ValueError("cannot normalise the zero vector")
        return Vector(self.x / n, self.y / n)

    def angle_to(self, other):
        """Unsigned angle in degrees between the two vectors."""
        cos = self.dot(other) / (self.length() * other.length())
        return math.degrees(math.acos(max(-1.0, min(1.0, cos))))
