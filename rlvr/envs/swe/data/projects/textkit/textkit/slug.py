"""URL slugs."""

import re
import unicodedata

_NON_WORD = re.compile(r"[^a-z0-9]+")


def slugify(text, sep="-", max_length=None):
    """Lowercase ASCII slug: accents are stripped, runs of other characters become one separator.

    With ``max_length`` the slug is cut at a separator so that no word is split (a single word longer
    than the limit is cut hard).
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = _NON_WORD.sub(sep, ascii_text.lower()).strip(sep)
    if max_length is not None and len(slug) > max_length:
        cut = slug[:max_length + 1]
        if sep in cut:
            slug = cut[:cut.rindex(sep)]
        else:
            slug = slug[:max_length]
    return slug
