"""Splitting amounts without losing or inventing cents."""


def split_evenly(total, parts):
    """Split ``total`` cents into ``parts`` shares differing by at most one cent; larger shares first."""
    if parts <= 0:
        raise ValueError("parts must be positive")
    base, extra = divmod(total, parts)
    return [base + 1 if i < extra else base for i in range(parts)]


def split_by_weights(total, weights):
    """Split ``total`` cents proportionally to ``weights`` with the largest-remainder method.

    Ties in the remainder go to the earlier share. The shares always sum to ``total``.
    """
    if not weights or any(w < 0 for w in weights) or sum(weights) == 0:
        raise ValueError("weights must be non-negative with a positive sum")
    weight_sum = sum(weights)
    exact = [total * w / weight_sum for w in weights]
    shares = [int(x) for x in exact]
    leftover = total - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[:leftover]:
        shares[i] += 1
    return shares
