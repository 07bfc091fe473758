"""Half-open intervals [start, end) of minutes."""


class Interval:
    __slots__ = ("start", "end")

    def __init__(self, start, end):
        if end <= start:
            raise ValueError(f"empty interval [{start}, {end})")
        self.start = start
        self.end = end

    def __eq__(self, other):
        return isinstance(other, Interval) and (self.start, self.end) == (other.start, other.end)

    def __repr__(self):
        return f"Interval({self.start}, {self.end})"

    def duration(self):
        return self.end - self.start

    def overlaps(self, other):
        return self.start < other.end and other.start < self.end

    def contains(self, minute):
        return self.start <= minute < self.end


def merge(intervals):
    """Sorted, non-overlapping intervals covering the same minutes; adjacent intervals are joined."""
    ordered = sorted(intervals, key=lambda iv: (iv.start, iv.end))
    merged = []
    for iv in ordered:
        if merged and iv.start <= merged[-1].end:
            if iv.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, iv.end)
        else:
            merged.append(Interval(iv.start, iv.end))
    return merged


def total_covered(intervals):
    """Number of minutes covered by at least one interval."""
    return sum(iv.duration() for iv in merge(intervals))
