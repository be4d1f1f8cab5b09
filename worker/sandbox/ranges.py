"""Which character ranges of which document a prompt contains.

Truth over plausibility: text that occurs in several places of the documents (licences,
boilerplate, repeated log lines) is attributed to a place only when the REPL code itself sliced
that place out of ``context`` (``SliceLog``); otherwise the range says it is ambiguous and how many
places it could be, instead of naming the first copy.

Runs inside the REPL process (which holds the documents), so a sub-call's record can say "this
prompt carried context[120000:220000]" without the host ever searching megabytes of text.

Method: an index maps the hash of every ``key_len``-character window of the documents that starts
at a multiple of ``stride`` to its position (first occurrence wins). The prompt is scanned window by
window; a hit is verified by comparing the text, then extended backwards and forwards by galloping
slice comparisons (which run at C speed), and the scan jumps past the match. Any common span of at
least ``stride + key_len - 1`` characters is found; with small documents that is 63 characters.
The stride grows for very large documents so the index stays under ``max_entries`` entries (the
guaranteed span length grows with it, e.g. ~130 characters for 100 MB of documents).

Cost: building the index is one pass of slicing and hashing (~60 ms for 10 MB); a 100K-character
slice of a 10 MB document is located in well under a millisecond after the index exists, and text
that is not in any document costs about 0.2 µs per character, and the scan gives up after
``max_probes`` such characters (3M by default, about half a second): a multi-megabyte prompt of
text found in no document is reported with the spans found before that point.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

MIN_SPAN = 64
_POS_BITS = 40  # positions up to 1 TiB characters; document index in the high bits
_POS_MASK = (1 << _POS_BITS) - 1


def _extend_forward(a: str, i: int, b: str, j: int) -> int:
    """Largest k with a[i:i+k] == b[j:j+k]."""
    limit = min(len(a) - i, len(b) - j)
    k = 0
    step = 64
    while k < limit:
        s = min(step, limit - k)
        if a[i + k : i + k + s] == b[j + k : j + k + s]:
            k += s
            step *= 2
            continue
        lo, hi = 0, s  # a[i+k : i+k+lo] matches, ... + hi does not
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[i + k : i + k + mid] == b[j + k : j + k + mid]:
                lo = mid
            else:
                hi = mid
        return k + lo
    return k


def _extend_backward(a: str, i: int, b: str, j: int, limit: int) -> int:
    """Largest k <= limit with a[i-k:i] == b[j-k:j]."""
    limit = min(limit, i, j)
    k = 0
    step = 64
    while k < limit:
        s = min(step, limit - k)
        if a[i - k - s : i - k] == b[j - k - s : j - k]:
            k += s
            step *= 2
            continue
        lo, hi = 0, s
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if a[i - k - mid : i - k] == b[j - k - mid : j - k]:
                lo = mid
            else:
                hi = mid
        return k + lo
    return k


class DocumentIndex:
    """Locate document text inside prompts. Build once per REPL (lazily), reuse for every call."""

    def __init__(
        self,
        documents: Sequence[str],
        min_span: int = MIN_SPAN,
        max_entries: int = 1_000_000,
        max_probes: int = 3_000_000,
    ) -> None:
        self.documents = tuple(documents)
        self.min_span = min_span
        self.key_len = max(8, min_span // 2)
        total = sum(len(d) for d in self.documents)
        self.stride = max(self.key_len, -(-total // max_entries) if max_entries else self.key_len)
        self.max_probes = max_probes
        self._index: dict[int, int] | None = None
        self._repeated: set[int] = set()

    def _build(self) -> dict[int, int]:
        k, stride = self.key_len, self.stride
        index: dict[int, int] = {}
        seen: set[int] = set()
        repeated: set[int] = set()
        # Later documents first and positions descending, so the first occurrence wins.
        for doc_no in range(len(self.documents) - 1, -1, -1):
            doc = self.documents[doc_no]
            last = len(doc) - k
            if last < 0:
                continue
            base = doc_no << _POS_BITS
            positions = range(last - last % stride, -1, -stride)
            keys = [hash(doc[p : p + k]) for p in positions]
            index.update(zip(keys, [base | p for p in positions], strict=True))
            repeated.update(h for h in keys if h in seen or seen.add(h))  # type: ignore[func-returns-value]
        self._repeated = repeated
        return index

    def unique(self, doc_no: int, start: int, end: int) -> bool | None:
        """Whether ``documents[doc_no][start:end]`` occurs nowhere else, from the index alone: True,
        False, or None when the index cannot tell (text too short to hold an indexed window in every
        copy, or a window that occurs at several indexed places)."""
        k, stride = self.key_len, self.stride
        if end - start < stride + k - 1:
            return None
        if self._index is None:
            self._index = self._build()
        docs = self.documents
        text = docs[doc_no][start:end]
        # Every copy of `text` has an indexed window at some offset i < stride of it; a window
        # indexed at several places is in `_repeated`; else the index points at its one place.
        for i in range(stride):
            h = hash(text[i : i + k])
            if h in self._repeated:
                return None
            code = self._index.get(h)
            if code is None:
                continue
            d, pos = code >> _POS_BITS, code & _POS_MASK
            if d == doc_no and pos - i == start:
                continue
            first = pos - i
            if first >= 0 and docs[d][first : first + len(text)] == text:
                return False
        return True

    def find(self, text: str) -> list[dict[str, int]]:
        """Spans of ``text`` (at least ``min_span`` characters) that occur in a document.

        Returns ``[{"doc": n, "start": a, "end": b}, ...]`` in prompt order: ``documents[n][a:b]``
        occurs in ``text``.
        """
        k = self.key_len
        n = len(text)
        if n < self.min_span or not self.documents:
            return []
        if self._index is None:
            self._index = self._build()
        get = self._index.get
        docs = self.documents
        out: list[dict[str, int]] = []
        i = 0
        covered = 0  # text[:covered] already belongs to a reported span
        probes = 0
        while i + k <= n:
            code = get(hash(text[i : i + k]))
            if code is None:
                i += 1
                probes += 1
                if probes > self.max_probes:
                    break  # budget: ~0.5 s of text that is in no document; report what was found
                continue
            doc_no, pos = code >> _POS_BITS, code & _POS_MASK
            doc = docs[doc_no]
            if doc[pos : pos + k] != text[i : i + k]:
                i += 1
                continue
            back = _extend_backward(text, i, doc, pos, i - covered)
            fwd = _extend_forward(text, i + k, doc, pos + k)
            start, end = i - back, i + k + fwd
            if end - start >= self.min_span:
                out.append({"doc": doc_no, "start": pos - back, "end": pos + k + fwd})
                covered = end
                i = end
            else:
                i += 1
        return out


AMBIGUITY_LIMIT = 64  # places counted at most for one span ("64" then reads "64 or more")


class SliceLog:
    """The ``context[a:b]`` slices the REPL code took, per document (bounded, oldest dropped)."""

    def __init__(self, documents: int, max_slices: int = 100_000) -> None:
        self.starts: list[list[int]] = [[] for _ in range(documents)]
        self.stops: list[list[int]] = [[] for _ in range(documents)]
        self.max_slices = max_slices
        self.count = 0

    def record(self, doc: int, start: int, stop: int) -> None:
        starts, stops = self.starts[doc], self.stops[doc]
        i = bisect.bisect_left(starts, start)
        if i < len(starts) and starts[i] == start and stops[i] >= stop:
            return  # already known
        if self.count >= self.max_slices:
            biggest = max(range(len(self.starts)), key=lambda d: len(self.starts[d]))
            del self.starts[biggest][0], self.stops[biggest][0]
            self.count -= 1
            if biggest == doc:
                i = bisect.bisect_left(starts, start)
        starts.insert(i, start)
        stops.insert(i, stop)
        self.count += 1

    def covers(self, doc: int, start: int, length: int, look_back: int = 64) -> bool:
        """Whether some recorded slice of ``doc`` contains ``[start, start + length)``."""
        starts, stops = self.starts[doc], self.stops[doc]
        i = bisect.bisect_right(starts, start)
        return any(stops[j] >= start + length for j in range(i - 1, max(i - 1 - look_back, -1), -1))


def occurrences(documents: Sequence[str], text: str, limit: int = AMBIGUITY_LIMIT) -> list[tuple[int, int]]:
    """(document, offset) of each occurrence of ``text``, at most ``limit`` of them."""
    found: list[tuple[int, int]] = []
    for d, doc in enumerate(documents):
        pos = doc.find(text)
        while pos >= 0 and len(found) < limit:
            found.append((d, pos))
            pos = doc.find(text, pos + 1)
        if len(found) >= limit:
            break
    return found


def pin(documents: Sequence[str], text: str, slices: SliceLog) -> tuple[int, int] | int:
    """Where ``text`` is: (document, offset) when it occurs once, or once within what the code
    sliced; else the number of places it could be (0: nowhere)."""
    places = occurrences(documents, text)
    if len(places) == 1:
        return places[0]
    pinned = [p for p in places if slices.covers(p[0], p[1], len(text))]
    if len(pinned) == 1:
        return pinned[0]
    return len(places)


def locate(index: DocumentIndex, slices: SliceLog, text: str) -> list[dict[str, int]]:
    """The ranges of the documents a prompt carries: ``{"doc", "start", "end"}`` where the place
    is certain, ``{"doc", "chars", "places"}`` where the same text occurs in several places."""
    out: list[dict[str, int]] = []
    for span in index.find(text):
        doc, start, end = span["doc"], span["start"], span["end"]
        if index.unique(doc, start, end):  # the common case, decided without scanning documents
            out.append(span)
            continue
        where = pin(index.documents, index.documents[doc][start:end], slices)
        if isinstance(where, tuple):
            out.append({"doc": where[0], "start": where[1], "end": where[1] + end - start})
        else:
            out.append({"doc": doc, "chars": end - start, "places": where})
    return out
