"""Built-in suites: pure functions of (seed, size, count, source documents) -> cases with exact answers.

No database and no files here: the same arguments always give the same items, character for
character, so an evaluation can be re-created and its cases re-checked. `size` is the total
length of the context in characters (all of an item's documents together).

- niah: one unique fact planted at a depth in a haystack (the user's documents, tiled or cut to
  `size`, or generated filler); at the given depths in turn, or spread evenly over [0, 1].
- multi: 2-3 linked facts, each in a different document among many; the question needs them all.
- aggregate: labelled records; count / most-frequent / comparison questions with exact answers.
- pairs: records with keys, a few keys shared; the answer is every pair of ids sharing a key.
- file: the user's own questions (JSONL or CSV), asked of the named user documents.
"""

import csv
import io
import json
import random
import string
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

SUITES = ("niah", "multi", "aggregate", "pairs")
SIZE_MIN = 1_000
SIZE_MAX = 100_000_000

FILLER_WORDS = ["ledger", "river", "quarterly", "harbor", "committee", "report", "shipment", "invoice", "north", "granite", "meeting", "minutes", "supply", "weather", "station", "orchard", "lantern", "copper", "signal", "quiet", "winter", "garden", "orbit", "canyon", "meadow", "vessel", "archive", "bridge", "market", "stone", "morning", "evening", "office", "budget", "review", "project", "timeline", "survey", "village", "road", "field"]
NAME_FIRST = ["Ada", "Bram", "Cora", "Dov", "Esme", "Finn", "Gaia", "Hugo", "Ines", "Joss", "Kaia", "Lior", "Mira", "Nils", "Odile", "Pavel", "Quill", "Rhea", "Soren", "Tova", "Ulla", "Vero", "Wren", "Xavi", "Yara", "Zeno"]
NAME_LAST = ["Abernathy", "Brightwater", "Castellane", "Dunmore", "Everhart", "Fairweather", "Greystone", "Halloway", "Ironwood", "Juniper", "Kingsley", "Larkspur", "Merriweather", "Northcott", "Oakhurst", "Pendleton", "Quatermain", "Ravenscroft", "Silverton", "Thistlewood"]
ORG_WORDS = ["Azure", "Cobalt", "Ember", "Fable", "Garnet", "Helix", "Indigo", "Jasper", "Kestrel", "Lumen", "Marrow", "Nimbus", "Onyx", "Prism", "Quartz", "Russet", "Saffron", "Tundra", "Umber", "Vesper"]
ORG_KINDS = ("Foundry", "Institute", "Cooperative", "Laboratories", "Syndicate", "Guild", "Works")
CITY_PARTS = ["Vel", "Mor", "Tal", "Kas", "Dre", "Oru", "Pim", "Sel", "Quo", "Zan", "Bri", "Lum", "Nax", "Ost", "Yev", "Hal"]
CITY_ENDS = ("mora", "dune", "vik", "heim", "quay", "stead", "ford", "grad", "holm", "port")
LABELS = ("billing", "outage", "refund", "security", "shipping", "feedback", "account", "legal")


@dataclass(frozen=True)
class SourceDocument:
    """A user's document given to a suite: its name and text."""

    name: str
    text: str


@dataclass(frozen=True)
class Item:
    """One question with its checkable answer. `documents` are generated texts (name, text); for the
    file suite they are empty and `document_names` name the user's documents (empty: all of them)."""

    key: str
    question: str
    expected: object
    scorer: str
    params: dict = field(default_factory=dict)
    documents: tuple[SourceDocument, ...] = ()
    document_names: tuple[str, ...] = ()
    meta: dict = field(default_factory=dict)


def rng_for(seed: int, *parts: object) -> random.Random:
    return random.Random(f"{seed}|" + "|".join(str(p) for p in parts))


def filler(rng: random.Random, chars: int) -> str:
    """`chars` characters of sentences drawn from a pool, so 100 M characters take seconds."""
    if chars <= 0:
        return ""
    pool = [" ".join(rng.choice(FILLER_WORDS) for _ in range(rng.randint(8, 16))).capitalize() + ". "
            for _ in range(400)]
    average = sum(map(len, pool)) / len(pool)
    text = "".join(rng.choices(pool, k=int(chars / average) + 2))
    while len(text) < chars:
        text += rng.choice(pool)
    return text[:chars]


def tile(sources: list[SourceDocument], chars: int) -> str:
    """The users' texts joined, repeated or cut to exactly `chars` characters."""
    base = "\n\n".join(s.text for s in sources if s.text)
    if not base:
        return ""
    text = (base + "\n\n") * (chars // (len(base) + 2) + 1)
    return text[:chars]


def plant(text: str, fact: str, depth: float) -> str:
    """`text` with `fact` as its own line near `depth` (0 start, 1 end), at a line or sentence break."""
    at = int(len(text) * depth)
    cut = max(text.rfind("\n", 0, at), text.rfind(". ", 0, at) + 1)
    cut = 0 if cut <= 0 else cut + 1
    return text[:cut] + "\n" + fact + "\n" + text[cut:]


def code(rng: random.Random) -> str:
    letters = "".join(rng.choice(string.ascii_uppercase) for _ in range(2))
    return f"{letters}-{rng.randint(1000, 9999)}-{rng.choice(ORG_WORDS).upper()}"


def depths(count: int, chosen: list[float] | None = None) -> list[float]:
    """The needle's depth for each of `count` items: the chosen depths in turn, else evenly spread."""
    if chosen:
        return [chosen[i % len(chosen)] for i in range(count)]
    return [0.5] if count == 1 else [round(i / (count - 1), 4) for i in range(count)]


def niah(seed: int, size: int, count: int, sources: Sequence[SourceDocument] = (),
         chosen_depths: list[float] | None = None) -> list[Item]:
    items = []
    for i, depth in enumerate(depths(count, chosen_depths)):
        rng = rng_for(seed, "niah", size, i)
        project = f"{rng.choice(ORG_WORDS)} {rng.choice(CITY_PARTS)}{rng.choice(CITY_ENDS)}"
        answer = code(rng)
        fact = f"The access code for project {project} is {answer}."
        body = tile(list(sources), size - len(fact) - 2) or filler(rng, size - len(fact) - 2)
        name = f"niah-{size}-{i}.txt"
        items.append(Item(
            key=f"niah-{size}-{i}", question=f"What is the access code for project {project}?",
            expected=answer, scorer="contains", documents=(SourceDocument(name, plant(body, fact, depth)),),
            meta={"depth": depth},
        ))
    return items


def unique_names(rng: random.Random, count: int, make) -> list[str]:
    names: list[str] = []
    while len(names) < count:
        name = make(rng)
        if name not in names:
            names.append(name)
    return names


def person(rng: random.Random) -> str:
    return f"{rng.choice(NAME_FIRST)} {rng.choice(NAME_LAST)}"


def org(rng: random.Random) -> str:
    return f"the {rng.choice(ORG_WORDS)} {rng.choice(ORG_KINDS)}"


def city(rng: random.Random) -> str:
    return f"{rng.choice(CITY_PARTS)}{rng.choice(CITY_ENDS)}"


def multi_chains(rng: random.Random, chains: int) -> list[tuple[str, str, str, str]]:
    people = unique_names(rng, chains, person)
    orgs = unique_names(rng, chains, org)
    cities = unique_names(rng, chains, city)
    codes = [f"PC-{n}" for n in rng.sample(range(10000, 99999), chains)]
    return list(zip(people, orgs, cities, codes, strict=True))


FACTS_CHARS = 1_600  # about what the six chains' planted facts add to the documents


def multi(seed: int, size: int, count: int, sources: Sequence[SourceDocument] = ()) -> list[Item]:
    documents_per_item = max(5, min(100, size // 10_000))
    items = []
    for i in range(count):
        rng = rng_for(seed, "multi", size, i)
        hops = 2 + (i % 2)  # alternately 2 and 3 facts
        chains = multi_chains(rng, 6)  # the first is asked about, the others are distractors
        per_document = max(200, (size - FACTS_CHARS) // documents_per_item)
        texts = [tile(list(sources), per_document) or filler(rng, per_document) for _ in range(documents_per_item)]
        planted_in: list[int] = []
        for c, (who, where, town, postcode) in enumerate(chains):
            facts = [f"{who} works at {where}.",
                     f"The headquarters of {where} are in the city of {town}.",
                     f"The postal code of the city of {town} is {postcode}."][:hops]
            slots = rng.sample(range(documents_per_item), len(facts))
            for fact, slot in zip(facts, slots, strict=True):
                texts[slot] = plant(texts[slot], fact[0].upper() + fact[1:], rng.random())
            if c == 0:
                planted_in = sorted(slots)
        who, where, town, postcode = chains[0]
        if hops == 2:
            question = f"In which city are the headquarters of the organisation {who} works at?"
            expected = town
        else:
            question = f"What is the postal code of the city where the organisation {who} works at has its headquarters?"
            expected = postcode
        docs = tuple(SourceDocument(f"multi-{size}-{i}-doc{d:03d}.txt", t) for d, t in enumerate(texts))
        items.append(Item(key=f"multi-{size}-{i}", question=question, expected=expected, scorer="contains",
                          documents=docs, meta={"hops": hops, "documents_with_facts": planted_in}))
    return items


def labelled_records(rng: random.Random, size: int) -> tuple[str, Counter]:
    weights = [rng.uniform(0.5, 3.0) for _ in LABELS]
    lines, counts, length, n = [], Counter[str](), 0, 0
    while True:
        label = rng.choices(LABELS, weights)[0]
        line = (f"[{n:07d}] 2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d} · user u{rng.randint(1, 999):03d}"
                f" · label: {label} · amount {rng.randint(1, 500)}\n")
        if length + len(line) > size and n:
            break
        lines.append(line)
        counts[label] += 1
        length += len(line)
        n += 1
    return "".join(lines), counts


def aggregate(seed: int, size: int, count: int, sources: Sequence[SourceDocument] = ()) -> list[Item]:
    rng = rng_for(seed, "aggregate", size)
    text, counts = labelled_records(rng, size)
    document = (SourceDocument(f"aggregate-{size}.txt", text),)
    ranked = counts.most_common()
    items = []
    for i in range(count):
        q = rng_for(seed, "aggregate", size, i)
        kind = ("count", "most_frequent", "compare")[i % 3]
        if kind == "most_frequent" and len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
            kind = "count"  # a tie has no single answer
        if kind == "count":
            label = q.choice(sorted(counts))
            question = f"How many records have the label '{label}'? Answer with a number."
            expected, scorer = counts[label], "numeric"
        elif kind == "most_frequent":
            question = f"Which label occurs most often among the records? Answer with one of: {', '.join(LABELS)}."
            expected, scorer = ranked[0][0], "exact"
        else:
            pairs = [(a, b) for a, b in combinations(sorted(counts), 2) if counts[a] != counts[b]]
            if not pairs:
                label = sorted(counts)[0]
                question, expected, scorer = f"How many records have the label '{label}'?", counts[label], "numeric"
            else:
                a, b = q.choice(pairs)
                question = f"Which label occurs in more records: '{a}' or '{b}'? Answer with the label only."
                expected, scorer = (a if counts[a] > counts[b] else b), "exact"
        items.append(Item(key=f"aggregate-{size}-{i}", question=question, expected=expected, scorer=scorer,
                          documents=document, meta={"kind": kind, "records": sum(counts.values())}))
    return items


PAIR_PATTERN = r"(R\d{7})\W+(R\d{7})"


def keyed_records(rng: random.Random, size: int) -> tuple[str, list[str]]:
    """Records with distinct keys except 3-5 groups of 2-3 records sharing one; and every pair of
    ids within a group, as "ID1,ID2" (sorted)."""
    group_sizes = [rng.randint(2, 3) for _ in range(rng.randint(3, 5))]
    line_chars = 45  # "Record R0000001: region Kas, key 00ab12cd34.\n"
    n = max(sum(group_sizes) + 1, size // line_chars)
    ids = [f"R{k:07d}" for k in range(n)]
    keys = [f"{k:010x}" for k in rng.sample(range(16**10), n)]  # distinct: no accidental pair
    members = rng.sample(range(n), sum(group_sizes))
    expected, start = [], 0
    for group_size in group_sizes:
        group, start = members[start:start + group_size], start + group_size
        for k in group[1:]:
            keys[k] = keys[group[0]]
        expected += [",".join(sorted((ids[a], ids[b]))) for a, b in combinations(group, 2)]
    lines = [f"Record {ids[k]}: region {rng.choice(CITY_PARTS)}, key {keys[k]}.\n" for k in range(n)]
    return "".join(lines), sorted(expected)


def pairs(seed: int, size: int, count: int, sources: Sequence[SourceDocument] = ()) -> list[Item]:
    items = []
    for i in range(count):
        rng = rng_for(seed, "pairs", size, i)
        text, expected = keyed_records(rng, size)
        items.append(Item(
            key=f"pairs-{size}-{i}",
            question="List every pair of record IDs whose key is the same. Give one pair per line as: ID1, ID2",
            expected=expected, scorer="set_f1", params={"item_pattern": PAIR_PATTERN, "unordered": True},
            documents=(SourceDocument(f"pairs-{size}-{i}.txt", text),), meta={"pairs": len(expected)},
        ))
    return items


GENERATORS: dict[str, Callable[..., list[Item]]] = {"niah": niah, "multi": multi, "aggregate": aggregate, "pairs": pairs}


def generate(suite: str, seed: int, size: int, count: int, sources: Sequence[SourceDocument] = (),
             depths: list[float] | None = None) -> list[Item]:
    """The items of a built-in suite at one size (`depths`: niah only)."""
    if suite not in GENERATORS:
        raise ValueError(f"Unknown suite {suite!r}; the suites are {', '.join(SUITES)} and file:PATH.")
    if not SIZE_MIN <= size <= SIZE_MAX:
        raise ValueError(f"Sizes are between {SIZE_MIN:,} and {SIZE_MAX:,} characters; {size:,} is not.")
    if depths and any(not 0 <= d <= 1 for d in depths):
        raise ValueError("Depths are between 0 (start) and 1 (end).")
    if suite == "niah":
        return niah(seed, size, count, list(sources), depths)
    return GENERATORS[suite](seed, size, count, list(sources))


class QuestionFileError(ValueError):
    """A user's question file that cannot be read as the documented JSONL or CSV."""


FILE_SCORERS = ("exact", "contains", "numeric", "set_f1", "regex", "judge")


def _file_item(n: int, row: dict, known: set[str]) -> Item:
    question = str(row.get("question") or "").strip()
    if not question:
        raise QuestionFileError(f"line {n}: no question")
    if "expected" not in row or row["expected"] in (None, ""):
        raise QuestionFileError(f"line {n}: no expected answer")
    scorer = str(row.get("scorer") or "contains").strip()
    if scorer not in FILE_SCORERS:
        raise QuestionFileError(f"line {n}: unknown scorer {scorer!r}; one of {', '.join(FILE_SCORERS)}")
    names = row.get("documents") or []
    if isinstance(names, str):
        names = [x.strip() for x in names.split("|") if x.strip()]
    missing = [x for x in names if x not in known]
    if missing:
        raise QuestionFileError(f"line {n}: no document named {missing[0]!r} (given: {', '.join(sorted(known))})")
    raw_params = row.get("params")
    params = raw_params if isinstance(raw_params, dict) else {}
    return Item(key=f"file-{n}", question=question, expected=row["expected"], scorer=scorer, params=params,
                document_names=tuple(names))


def parse_question_file(text: str, filename: str, document_names: list[str]) -> list[Item]:
    """Items from a JSONL file (one object per line) or, for a .csv name, a CSV with a header row
    question,expected[,documents][,scorer] where documents are separated by '|'."""
    known = set(document_names)
    rows: list[tuple[int, dict]] = []
    if filename.lower().endswith(".csv"):
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or not {"question", "expected"} <= {f.strip() for f in reader.fieldnames}:
            raise QuestionFileError("the CSV needs a header row with at least question and expected")
        rows = [(k + 2, {(key or "").strip(): value for key, value in row.items()}) for k, row in enumerate(reader)]
    else:
        for k, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise QuestionFileError(f"line {k}: not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise QuestionFileError(f"line {k}: not a JSON object")
            rows.append((k, row))
    if not rows:
        raise QuestionFileError("the file has no questions")
    return [_file_item(n, row, known) for n, row in rows]
