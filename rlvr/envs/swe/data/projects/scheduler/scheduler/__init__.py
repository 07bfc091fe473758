"""scheduler: meeting scheduling over one day."""

from scheduler.clock import format_time, parse_time
from scheduler.intervals import Interval, merge, total_covered
from scheduler.planner import common_slot, free_slots, rooms_needed

__all__ = ["Interval", "common_slot", "format_time", "free_slots", "merge", "parse_time", "rooms_needed",
           "total_covered"]
