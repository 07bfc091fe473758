"""Line wrapping and truncation."""


def wrap(text, width):
    """Greedy word wrap to lines of at most ``width`` characters (longer words get a line of their own)."""
    if width < 1:
        raise ValueError("width must be at least 1")
    lines = []
    current = ""
    for word in text.split():
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= width:
            current = current + " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


def truncate(text, length, ellipsis="..."):
    """Cut ``text`` to at most ``length`` characters, ending with ``ellipsis`` when it was cut."""
    if length < len(ellipsis):
        raise ValueError("length must leave room for the ellipsis")
    if len(text) <= length:
        return text
    return text[:length - len(ellipsis)].rstrip() + ellipsis
