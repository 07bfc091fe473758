"""Clock times as minutes after midnight."""

MINUTES_PER_DAY = 24 * 60


def parse_time(text):
    """'09:30' -> 570; '24:00' is accepted as the end of the day."""
    hours, sep, minutes = text.strip().partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or len(minutes) != 2:
        raise ValueError(f"expected HH:MM, got {text!r}")
    h, m = int(hours), int(minutes)
    if m >= 60 or h > 24 or (h == 24 and m > 0):
        raise ValueError(f"no such time: {text!r}")
    return h * 60 + m


def format_time(minutes):
    """570 -> '09:30'."""
    if not 0 <= minutes <= MINUTES_PER_DAY:
        raise ValueError(f"minutes out of range: {minutes}")
    h, m = divmod(minutes, 60)
    return f"{h:02d}:{m:02d}"
