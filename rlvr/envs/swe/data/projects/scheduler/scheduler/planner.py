"""Planning: free time, rooms and common slots."""

from scheduler.intervals import Interval, merge


def free_slots(busy, day_start, day_end, min_length=1):
    """Gaps between busy intervals within [day_start, day_end) of at least ``min_length`` minutes."""
    slots = []
    cursor = day_start
    for iv in merge(busy):
        if iv.end <= day_start or iv.start >= day_end:
            continue
        if iv.start - cursor >= min_length:
            slots.append(Interval(cursor, iv.start))
        cursor = max(cursor, iv.end)
    if day_end - cursor >= min_length:
        slots.append(Interval(cursor, day_end))
    return slots


def rooms_needed(meetings):
    """Fewest rooms that host every meeting (a meeting may start when another ends)."""
    events = []
    for m in meetings:
        events.append((m.start, 1))
        events.append((m.end, -1))
    events.sort()
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def common_slot(calendars, duration, day_start, day_end):
    """Earliest interval of ``duration`` minutes free in every calendar, or None."""
    busy = [iv for cal in calendars for iv in cal]
    for slot in free_slots(busy, day_start, day_end, min_length=duration):
        return Interval(slot.start, slot.start + duration)
    return None
