"""Axis-aligned rectangles."""


class Rect:
    """A rectangle with its lower-left corner at (x, y)."""

    def __init__(self, x, y, width, height):
        if width < 0 or height < 0:
            raise ValueError("width and height must be non-negative")
        self.x, self.y, self.width, self.height = x, y, width, height

    def __eq__(self, other):
        return isinstance(other, Rect) and (self.x, self.y, self.width, self.height) == (
            other.x, other.y, other.width, other.height)

    def __repr__(self):
        return f"Rect({self.x}, {self.y}, {self.width}, {self.height})"

    @property
    def right(self):
        return self.x + self.width

    @property
    def top(self):
        return self.y + self.height

    def area(self):
        return self.width * self.height

    def perimeter(self):
        return 2 * (self.width + self.height)

    def contains(self, px, py):
        """Whether the point lies inside or on the border."""
        return self.x <= px <= self.right and self.y <= py <= self.top

    def intersects(self, other):
        """Whether the interiors overlap (touching edges do not count)."""
        return self.x < other.right and other.x < self.right and self.y < other.top and other.y < self.top

    def intersection(self, other):
        """The overlapping rectangle, or None."""
        if not self.intersects(other):
            return None
        x1, y1 = max(self.x, other.x), max(self.y, other.y)
        x2, y2 = min(self.right, other.right), min(self.top, other.top)
        return Rect(x1, y1, x2 - x1, y2 - y1)

    def union_bounds(self, other):
        """The smallest rectangle containing both."""
        x1, y1 = min(self.x, other.x), min(self.y, other.y)
        x2, y2 = max(self.right, other.right), max(self.top, other.top)
        return Rect(x1, y1, x2 - x1, y2 - y1)
