"""Inter-rater agreement, with the standard library only (see web-ui.md: the Python packages that compute
these are GPL or pull in hundreds of megabytes).

Input is plain data: for one label, the ratings of each item as a mapping reviewer -> value. Nothing here
touches the database.

* Krippendorff's alpha, from the coincidence of values within items (Krippendorff 2011, "Computing
  Krippendorff's Alpha-Reliability"): nominal (booleans, pass/fail, categorical), ordinal (integer scores
  with few levels), interval (other scores). Items with fewer than two ratings are not pairable and are
  left out, as the method prescribes. Alpha is "not defined" (None) when fewer than two values are
  pairable or when every pairable value is the same (no variation, so no expected disagreement).
* Multi-valued categorical labels (a list of values per rating) use the Jaccard distance between the two
  sets as alpha's difference function (1 - |A and B| / |A or B|): two reviewers who chose {a, b} and
  {a} disagree by 1/2, not fully. Single values count as one-element sets, so a label whose ratings all
  have one value gets exactly its nominal alpha.
* Cohen's kappa for each pair of reviewers over the items both rated: unweighted for nominal labels,
  quadratic-weighted for ordinal ones; for interval scores kappa is not defined (no categories) and the
  pair's mean absolute difference is given instead. Multi-valued ratings count as equal only when the
  sets are equal.
* Each reviewer against the consensus of the others on the same item (the strict majority of the other
  reviewers' values; an item where the others have no majority is left out), so that a reviewer's own
  rating never props up their score.
* Text labels get descriptive similarity only: the mean word-overlap (Jaccard) similarity of the pairs of
  texts within an item, and the least similar pairs.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

NOMINAL, ORDINAL, INTERVAL, SETS, TEXT = "nominal", "ordinal", "interval", "sets", "text"
# An integer score with at most this many levels is ordinal; beyond, interval.
ORDINAL_MAX_LEVELS = 12
MOST_DIFFERENT = 5

Ratings = Mapping[Any, Mapping[str, Any]]  # item -> reviewer -> value


def level_of(label: Mapping[str, Any], values: Iterable[Any] = ()) -> str:
    """The level of measurement of a label of the schema (see the module's docstring)."""
    kind = label.get("type")
    if kind == "text":
        return TEXT
    if kind == "score":
        if label.get("is_integer"):
            low, high = label.get("min"), label.get("max")
            if low is not None and high is not None:
                levels = high - low + 1
            else:
                levels = len(set(values))
            if levels <= ORDINAL_MAX_LEVELS:
                return ORDINAL
        return INTERVAL
    if kind == "categorical" and any(isinstance(v, list) for v in values):
        return SETS
    return NOMINAL


def hashable(value: Any) -> Hashable:
    """A rating as a hashable category: a multi-valued rating as the frozenset of its values."""
    if isinstance(value, list):
        return frozenset(value)
    return value


def _as_set(value: Hashable) -> frozenset[Any]:
    return value if isinstance(value, frozenset) else frozenset([value])


def jaccard_distance(a: Hashable, b: Hashable) -> float:
    sa, sb = _as_set(a), _as_set(b)
    union = len(sa | sb)
    return 0.0 if union == 0 else 1.0 - len(sa & sb) / union


# Krippendorff's alpha ------------------------------------------------------------------------------

def _pairable(units: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    return [u for u in units if len(u) >= 2]


def _alpha_interval(units: list[Sequence[Any]]) -> float | None:
    # With the squared difference, both sums have closed forms: no pass over pairs of values.
    n = 0
    total = total_sq = 0.0
    observed = 0.0
    for unit in units:
        m = len(unit)
        s = float(sum(unit))
        sq = float(sum(x * x for x in unit))
        observed += 2.0 * (m * sq - s * s) / (m - 1)
        n += m
        total += s
        total_sq += sq
    if n < 2:
        return None
    expected = 2.0 * (n * total_sq - total * total) / (n * (n - 1))
    if expected <= 1e-12 * max(1.0, total_sq):
        return None
    return 1.0 - (observed / n) / expected


def _alpha_categories(units: list[Sequence[Any]], level: str) -> float | None:
    counts: Counter[Any] = Counter()
    per_unit: list[tuple[int, Counter[Any]]] = []
    for unit in units:
        c = Counter(hashable(v) for v in unit)
        per_unit.append((len(unit), c))
        counts.update(c)
    n = sum(counts.values())
    if n < 2 or len(counts) < 2:
        return None
    if level == NOMINAL:
        observed = sum((m * m - sum(k * k for k in c.values())) / (m - 1) for m, c in per_unit)
        expected = (n * n - sum(k * k for k in counts.values())) / (n - 1)
        return 1.0 - observed / expected
    values = list(counts)
    if level == ORDINAL:
        values.sort()
        # delta(c, k) = (sum of n_g from c to k - (n_c + n_k) / 2) ** 2, over the marginal counts.
        cumulative = []
        running = 0
        for v in values:
            running += counts[v]
            cumulative.append(running)
        index = {v: i for i, v in enumerate(values)}

        def distance(a: Any, b: Any) -> float:
            i, j = sorted((index[a], index[b]))
            between = cumulative[j] - (cumulative[i - 1] if i else 0)
            return (between - (counts[a] + counts[b]) / 2.0) ** 2
    else:
        distance = jaccard_distance
    pair_distance: dict[tuple[Any, Any], float] = {}

    def d(a: Any, b: Any) -> float:
        key = (a, b)
        found = pair_distance.get(key)
        if found is None:
            found = pair_distance[key] = pair_distance[(b, a)] = distance(a, b)
        return found

    observed = 0.0
    for m, c in per_unit:
        if len(c) > 1:
            items = list(c.items())
            observed += sum(na * nb * d(a, b) for a, na in items for b, nb in items if a != b) / (m - 1)
    marginal = list(counts.items())
    expected = sum(na * nb * d(a, b) for a, na in marginal for b, nb in marginal if a != b) / (n - 1)
    if expected <= 0:
        return None
    return 1.0 - observed / expected


def krippendorff_alpha(units: Iterable[Sequence[Any]], level: str = NOMINAL) -> float | None:
    """Alpha over `units`, each the values given to one item (missing ratings simply absent), or None
    where it is not defined."""
    pairable = _pairable(units)
    if not pairable:
        return None
    if level == INTERVAL:
        return _alpha_interval(pairable)
    return _alpha_categories(pairable, level)


# Cohen's kappa ------------------------------------------------------------------------------------

def cohen_kappa(pairs: Sequence[tuple[Any, Any]], *, weighted: bool = False) -> float | None:
    """Cohen's kappa of two raters over `pairs` (one (a, b) per item both rated); quadratic-weighted when
    `weighted` (values are ordered and their rank is the category's position). None when not defined:
    no pairs, or chance agreement is already perfect."""
    n = len(pairs)
    if n == 0:
        return None
    pairs = [(hashable(a), hashable(b)) for a, b in pairs]
    count_a = Counter(a for a, _ in pairs)
    count_b = Counter(b for _, b in pairs)
    if not weighted:
        observed = sum(1 for a, b in pairs if a == b) / n
        chance = sum(count_a[c] * count_b.get(c, 0) for c in count_a) / (n * n)
        if chance >= 1.0:
            return None
        return (observed - chance) / (1.0 - chance)
    categories = sorted(set(count_a) | set(count_b))
    rank = {c: i for i, c in enumerate(categories)}
    observed_w = sum((rank[a] - rank[b]) ** 2 for a, b in pairs) / n
    expected_w = sum(count_a[a] * count_b[b] * (rank[a] - rank[b]) ** 2
                     for a in count_a for b in count_b) / (n * n)
    if expected_w == 0:
        return None
    return 1.0 - observed_w / expected_w


# Text ---------------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def text_similarity(a: str, b: str) -> float:
    """Word-overlap (Jaccard) similarity of two texts, case-insensitive: 1 when they use the same words."""
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    union = wa | wb
    return 1.0 if not union else len(wa & wb) / len(union)


# One label ----------------------------------------------------------------------------------------

@dataclass
class PairAgreement:
    a: str
    b: str
    items: int
    kappa: float | None = None
    agreement: float | None = None
    mean_abs_difference: float | None = None


@dataclass
class ReviewerAgreement:
    reviewer: str
    items: int
    kappa: float | None = None
    agreement: float | None = None


@dataclass
class LabelAgreement:
    label_id: str
    name: str
    level: str
    items: int = 0             # items with at least two ratings (what alpha rests on)
    reviewers: int = 0         # reviewers with at least one pairable rating
    values: int = 0            # pairable ratings
    alpha: float | None = None
    percent_agreement: float | None = None  # agreeing pairs of ratings within items, out of all pairs
    unanimous_items: int = 0
    pairs: list[PairAgreement] = field(default_factory=list)
    versus_consensus: list[ReviewerAgreement] = field(default_factory=list)
    similarity: float | None = None         # text labels only
    most_different: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""

    @property
    def defined(self) -> bool:
        return self.alpha is not None or self.similarity is not None


def majority(values: Iterable[Any]) -> Any:
    """The value more than half of `values` share, or None."""
    counts = Counter(hashable(v) for v in values)
    if not counts:
        return None
    value, count = counts.most_common(1)[0]
    total = sum(counts.values())
    return value if count * 2 > total else None


def _agree(a: Hashable, b: Hashable) -> bool:
    return a == b


def label_agreement(label: Mapping[str, Any], ratings: Ratings, reviewer_names: Mapping[str, str] | None = None,
                    ) -> LabelAgreement:
    """Every figure for one label. `ratings` maps each item to {reviewer: value}; `reviewer_names` gives
    what to call a reviewer (default: the key itself)."""
    names = reviewer_names or {}
    pairable = {item: r for item, r in ratings.items() if len(r) >= 2}
    all_values = [v for r in pairable.values() for v in r.values()]
    level = level_of(label, all_values)
    out = LabelAgreement(label_id=str(label.get("id", "")), name=str(label.get("name", "")), level=level)
    out.items = len(pairable)
    out.values = len(all_values)
    reviewers = sorted({who for r in pairable.values() for who in r})
    out.reviewers = len(reviewers)
    if not pairable:
        out.note = "not defined: no item has ratings from two reviewers"
        return out
    if level == TEXT:
        return _text_agreement(out, pairable, names)

    categories = {item: {who: hashable(v) for who, v in r.items()} for item, r in pairable.items()}
    if level == INTERVAL:
        units: list[Sequence[Any]] = [list(r.values()) for r in pairable.values()]
    else:
        units = [list(r.values()) for r in categories.values()]
    out.alpha = krippendorff_alpha(units, level)
    if out.alpha is None:
        out.note = "not defined: every rating has the same value"

    agreeing = total_pairs = 0
    for r in categories.values():
        vals = list(r.values())
        counts = Counter(vals)
        m = len(vals)
        total_pairs += m * (m - 1) // 2
        agreeing += sum(k * (k - 1) // 2 for k in counts.values())
        if len(counts) == 1:
            out.unanimous_items += 1
    out.percent_agreement = agreeing / total_pairs if total_pairs else None

    weighted = level == ORDINAL
    by_pair: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
    raw_pairs: dict[tuple[str, str], list[tuple[Any, Any]]] = {}
    against: dict[str, list[tuple[Any, Any]]] = {who: [] for who in reviewers}
    for item, r in categories.items():
        who_rated = sorted(r)
        for i, a in enumerate(who_rated):
            for b in who_rated[i + 1:]:
                by_pair.setdefault((a, b), []).append((r[a], r[b]))
                if level == INTERVAL:
                    raw = pairable[item]
                    raw_pairs.setdefault((a, b), []).append((raw[a], raw[b]))
            others = majority(r[o] for o in who_rated if o != a)
            if others is not None:
                against[a].append((r[a], others))
    for (a, b), pairs in sorted(by_pair.items()):
        pair = PairAgreement(a=names.get(a, a), b=names.get(b, b), items=len(pairs),
                             agreement=sum(1 for x, y in pairs if x == y) / len(pairs))
        if level == INTERVAL:
            numbers = raw_pairs[(a, b)]
            pair.mean_abs_difference = sum(abs(x - y) for x, y in numbers) / len(numbers)
        else:
            pair.kappa = cohen_kappa(pairs, weighted=weighted)
        out.pairs.append(pair)
    for who in reviewers:
        pairs = against[who]
        row = ReviewerAgreement(reviewer=names.get(who, who), items=len(pairs))
        if pairs:
            row.agreement = sum(1 for x, y in pairs if x == y) / len(pairs)
            if level != INTERVAL:
                row.kappa = cohen_kappa(pairs, weighted=weighted)
        out.versus_consensus.append(row)
    return out


def _text_agreement(out: LabelAgreement, pairable: Ratings, names: Mapping[str, str]) -> LabelAgreement:
    scored: list[tuple[float, Any, str, str]] = []
    for item, r in pairable.items():
        who_rated = sorted(r)
        for i, a in enumerate(who_rated):
            for b in who_rated[i + 1:]:
                scored.append((text_similarity(str(r[a]), str(r[b])), item, a, b))
    out.similarity = sum(s for s, *_ in scored) / len(scored)
    out.unanimous_items = sum(1 for r in pairable.values() if len(set(r.values())) == 1)
    out.note = "text: descriptive similarity only (mean word overlap of the pairs within an item)"
    scored.sort(key=lambda t: (t[0], str(t[1])))
    out.most_different = [{"item": item, "similarity": s, "a": names.get(a, a), "b": names.get(b, b)}
                          for s, item, a, b in scored[:MOST_DIFFERENT]]
    return out


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)
