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

import heapq
import math
import operator
import string
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
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


def _alpha_categories(units: Iterable[tuple[Sequence[Any], int]], level: str) -> float | None:
    """Alpha over (unit, how many items have exactly this unit): identical units are counted, not repeated,
    so the cost follows the number of distinct units, which few categories keep small."""
    counts: Counter[Any] = Counter()
    per_unit: list[tuple[int, Counter[Any], int]] = []
    for unit, weight in units:
        c = Counter(unit)
        per_unit.append((len(unit), c, weight))
        for v, k in c.items():
            counts[v] += k * weight
    n = sum(counts.values())
    if n < 2 or len(counts) < 2:
        return None
    if level == NOMINAL:
        observed = sum(w * (m * m - sum(k * k for k in c.values())) / (m - 1) for m, c, w in per_unit)
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
    for m, c, w in per_unit:
        if len(c) > 1:
            items = list(c.items())
            observed += w * sum(na * nb * d(a, b) for a, na in items for b, nb in items if a != b) / (m - 1)
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
    grouped = Counter(tuple(hashable(v) for v in u) for u in pairable)
    return _alpha_categories(grouped.items(), level)


# Cohen's kappa ------------------------------------------------------------------------------------

def cohen_kappa(pairs: Sequence[tuple[Any, Any]], *, weighted: bool = False) -> float | None:
    """Cohen's kappa of two raters over `pairs` (one (a, b) per item both rated); quadratic-weighted when
    `weighted` (values are ordered and their rank is the category's position). None when not defined:
    no pairs, or chance agreement is already perfect."""
    return kappa_of_counts(Counter((hashable(a), hashable(b)) for a, b in pairs), weighted=weighted)


def kappa_of_counts(table: Mapping[tuple[Any, Any], int], *, weighted: bool = False) -> float | None:
    """Cohen's kappa from the contingency table {(a's value, b's value): number of items}."""
    n = sum(table.values())
    if n == 0:
        return None
    count_a: Counter[Any] = Counter()
    count_b: Counter[Any] = Counter()
    for (a, b), k in table.items():
        count_a[a] += k
        count_b[b] += k
    if not weighted:
        observed = sum(k for (a, b), k in table.items() if a == b) / n
        chance = sum(count_a[c] * count_b.get(c, 0) for c in count_a) / (n * n)
        if chance >= 1.0:
            return None
        return (observed - chance) / (1.0 - chance)
    categories = sorted(set(count_a) | set(count_b))
    rank = {c: i for i, c in enumerate(categories)}
    observed_w = sum(k * (rank[a] - rank[b]) ** 2 for (a, b), k in table.items()) / n
    expected_w = sum(count_a[a] * count_b[b] * (rank[a] - rank[b]) ** 2
                     for a in count_a for b in count_b) / (n * n)
    if expected_w == 0:
        return None
    return 1.0 - observed_w / expected_w


# Text ---------------------------------------------------------------------------------------------

# Punctuation becomes a space, so that "polite." and "polite" are one word (str.split is far cheaper than a
# regular expression over tens of thousands of texts).
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation})


def _words(text: str) -> set[str]:
    return set(text.lower().translate(_PUNCTUATION).split())


def _words_of(texts: set[Any]) -> dict[Any, set[str]]:
    """The words of each text; lowered and stripped of punctuation in one pass over all of them joined (a
    NUL keeps them apart, and is neither a letter nor punctuation)."""
    texts_list = list(texts)
    joined = "\0".join(map(str, texts_list))
    pieces = joined.lower().translate(_PUNCTUATION).split("\0")
    if len(pieces) != len(texts_list):  # a text holds a NUL itself
        return {text: _words(str(text)) for text in texts_list}
    return dict(zip(texts_list, map(set, map(str.split, pieces)), strict=True))


def text_similarity(a: str, b: str) -> float:
    """Word-overlap (Jaccard) similarity of two texts, case-insensitive: 1 when they use the same words."""
    wa, wb = _words(a), _words(b)
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
    """The value more than half of `values` share, or None. (One to three values, the usual number of
    reviewers, are decided by comparisons alone.)"""
    vals = [hashable(v) for v in values]
    n = len(vals)
    if n <= 3:
        if n == 0:
            return None
        if n == 1:
            return vals[0]
        if n == 2:
            return vals[0] if vals[0] == vals[1] else None
        a, b, c = vals
        return a if a == b or a == c else b if b == c else None
    value, count = Counter(vals).most_common(1)[0]
    return value if count * 2 > n else None


def _majority_of_others(values: Sequence[Any], skip: int) -> Any:
    """The strict majority of `values` without the one at `skip`, or None (the common small cases inline)."""
    others = [*values[:skip], *values[skip + 1:]]
    if len(others) == 1:
        return others[0]
    if len(others) == 2:
        return others[0] if others[0] == others[1] else None
    return majority(others)


Unit = tuple[Any, tuple[str, ...], tuple[Any, ...]]  # item, its reviewers (sorted), their values in that order
_ITEM, _RATERS, _VALUES = operator.itemgetter(0), operator.itemgetter(1), operator.itemgetter(2)


def units_of(ratings: Ratings) -> list[Unit]:
    """The items with at least two ratings, as units."""
    out: list[Unit] = []
    for item, r in ratings.items():
        if len(r) >= 2:
            rated = sorted(r.items())
            out.append((item, tuple(who for who, _ in rated), tuple(v for _, v in rated)))
    return out


def label_agreement(label: Mapping[str, Any], ratings: Ratings, reviewer_names: Mapping[str, str] | None = None,
                    ) -> LabelAgreement:
    """Every figure for one label. `ratings` maps each item to {reviewer: value}; `reviewer_names` gives
    what to call a reviewer (default: the key itself)."""
    return units_agreement(label, units_of(ratings), reviewer_names)


def _by_reviewers(units: Sequence[Unit]) -> dict[tuple[str, ...], tuple[list[Any], list[tuple[Any, ...]]]]:
    """Units grouped by who rated them: within a group each reviewer's values form one column."""
    groups: dict[tuple[str, ...], tuple[list[Any], list[tuple[Any, ...]]]] = {}
    raters = set(map(_RATERS, units))
    if len(raters) == 1:  # the usual case, every item rated by the same reviewers
        return {raters.pop(): (list(map(_ITEM, units)), list(map(_VALUES, units)))}
    for item, whos, vals in units:
        group = groups.get(whos)
        if group is None:
            group = groups[whos] = ([], [])
        group[0].append(item)
        group[1].append(vals)
    return groups


def units_agreement(label: Mapping[str, Any], units: Sequence[Unit], reviewer_names: Mapping[str, str] | None = None,
                    ) -> LabelAgreement:
    """Every figure for one label from its pairable units (see `Unit`; each with two ratings or more).

    Items are first grouped by their *pattern* (who gave which value): with few categories a queue of
    10,000 items has a few hundred patterns, and every figure is a weighted sum over them. Continuous
    scores and texts, whose patterns are nearly all distinct, are computed column-wise per set of reviewers."""
    names = reviewer_names or {}
    kind = label.get("type")
    values = list(chain.from_iterable(map(_VALUES, units)))
    if kind == "categorical":
        # Only the types of the values matter here (is any a list?): one value of each type stands for all.
        level = level_of(label, dict(zip(map(type, values), values, strict=True)).values())
    else:
        level = level_of(label, set(values) if kind == "score" else ())
    out = LabelAgreement(label_id=str(label.get("id", "")), name=str(label.get("name", "")), level=level)
    out.items = len(units)
    out.values = len(values)
    del values
    reviewers = sorted(set(chain.from_iterable(set(map(_RATERS, units)))))
    out.reviewers = len(reviewers)
    if not units:
        out.note = "not defined: no item has ratings from two reviewers"
        return out
    if level == TEXT:
        return _text_agreement(out, units, names)
    if level == INTERVAL:
        return _interval_agreement(out, units, names, reviewers)
    if level == SETS:
        patterns = Counter((whos, tuple(hashable(v) for v in vals)) for _, whos, vals in units)
    else:
        patterns = Counter(zip(map(_RATERS, units), map(_VALUES, units), strict=True))
    out.alpha = _alpha_categories(((vals, w) for (_, vals), w in patterns.items()), level)
    if out.alpha is None:
        out.note = "not defined: every rating has the same value"

    agreeing = total_pairs = 0
    tables: dict[tuple[str, str], Counter[tuple[Any, Any]]] = {}
    against: dict[str, Counter[tuple[Any, Any]]] = {who: Counter() for who in reviewers}
    for (who_rated, vals), w in patterns.items():
        m = len(vals)
        same = sum(k * (k - 1) // 2 for k in Counter(vals).values())
        agreeing += w * same
        total_pairs += w * (m * (m - 1) // 2)
        if same == m * (m - 1) // 2:
            out.unanimous_items += w
        for i in range(m):
            a, va = who_rated[i], vals[i]
            for j in range(i + 1, m):
                key = (a, who_rated[j])
                table = tables.get(key)
                if table is None:
                    table = tables[key] = Counter()
                table[(va, vals[j])] += w
            others = _majority_of_others(vals, i)
            if others is not None:
                against[a][(va, others)] += w
    out.percent_agreement = agreeing / total_pairs if total_pairs else None

    weighted = level == ORDINAL
    for (a, b), table in sorted(tables.items()):
        n = sum(table.values())
        out.pairs.append(PairAgreement(a=names.get(a, a), b=names.get(b, b), items=n,
                                       agreement=sum(k for (x, y), k in table.items() if x == y) / n,
                                       kappa=kappa_of_counts(table, weighted=weighted)))
    for who in reviewers:
        table = against[who]
        n = sum(table.values())
        row = ReviewerAgreement(reviewer=names.get(who, who), items=n)
        if n:
            row.agreement = sum(k for (x, y), k in table.items() if x == y) / n
            row.kappa = kappa_of_counts(table, weighted=weighted)
        out.versus_consensus.append(row)
    return out


def _interval_agreement(out: LabelAgreement, units: Sequence[Unit], names: Mapping[str, str],
                        reviewers: list[str]) -> LabelAgreement:
    """Continuous scores, a column per reviewer within each set of reviewers: alpha's closed form (the
    within-item sum of squared differences over pairs), and per pair the items both rated, how many got the
    same score and the mean absolute difference; no kappa (there are no categories)."""
    n = 0
    total = total_sq = observed = 0.0
    agreeing = total_pairs = 0
    pairs: dict[tuple[str, str], list[float]] = {}  # [items, same, sum of |difference|]
    against: dict[str, list[int]] = {who: [0, 0] for who in reviewers}  # [items, same]
    for whos, (_, rows) in _by_reviewers(units).items():
        m, k = len(whos), len(rows)
        cols = list(zip(*rows, strict=True))
        n += m * k
        for col in cols:
            total += sum(col)
            total_sq += sum(map(operator.mul, col, col))
        squares = 0.0
        for i in range(m):
            for j in range(i + 1, m):
                gaps = list(map(operator.sub, cols[i], cols[j]))
                same = list(map(operator.eq, cols[i], cols[j])).count(True)
                squares += sum(map(operator.mul, gaps, gaps))
                acc = pairs.get((whos[i], whos[j]))
                if acc is None:
                    acc = pairs[(whos[i], whos[j])] = [0, 0, 0.0]
                acc[0] += k
                acc[1] += same
                acc[2] += sum(map(abs, gaps))
                agreeing += same
        observed += 2.0 * squares / (m - 1)
        total_pairs += k * (m * (m - 1) // 2)
        unanimous = list(map(len, map(set, rows))).count(1)
        out.unanimous_items += unanimous
        for i in range(m):
            row = against[whos[i]]
            if m == 2:
                row[0] += k
                row[1] += list(map(operator.eq, cols[0], cols[1])).count(True)
            elif m == 3:
                j, h = (x for x in range(3) if x != i)
                row[0] += list(map(operator.eq, cols[j], cols[h])).count(True)
                row[1] += unanimous
            else:
                for vals in rows:
                    others = _majority_of_others(vals, i)
                    if others is not None:
                        row[0] += 1
                        row[1] += vals[i] == others
    expected = 2.0 * (n * total_sq - total * total) / (n * (n - 1)) if n > 1 else 0.0
    out.alpha = None if expected <= 1e-12 * max(1.0, total_sq) else 1.0 - (observed / n) / expected
    if out.alpha is None:
        out.note = "not defined: every rating has the same value"
    out.percent_agreement = agreeing / total_pairs if total_pairs else None
    for (a, b), (rated, equal, spread) in sorted(pairs.items()):
        out.pairs.append(PairAgreement(a=names.get(a, a), b=names.get(b, b), items=int(rated),
                                       agreement=equal / rated, mean_abs_difference=spread / rated))
    for who in reviewers:
        items, same = against[who]
        out.versus_consensus.append(ReviewerAgreement(reviewer=names.get(who, who), items=items,
                                                      agreement=same / items if items else None))
    return out


def _text_agreement(out: LabelAgreement, units: Sequence[Unit], names: Mapping[str, str]) -> LabelAgreement:
    """The similarity of every pair of texts within an item, a column of pairs at a time: the loops over
    items run in C (map over the columns of word sets), not in Python."""
    words = _words_of({text for unit in units for text in unit[2]})
    total = 0.0
    pairs = 0
    # Per pair of columns: (items, position of a, position of b, a, b, the similarity of each item's pair).
    columns: list[tuple[list[Any], int, int, str, str, list[float]]] = []
    for whos, (items, rows) in _by_reviewers(units).items():
        m = len(whos)
        out.unanimous_items += list(map(len, map(set, rows))).count(1)
        word_cols = [list(map(words.__getitem__, col)) for col in zip(*rows, strict=True)]
        sizes = [list(map(len, col)) for col in word_cols]
        for i in range(m):
            for j in range(i + 1, m):
                common = list(map(len, map(operator.and_, word_cols[i], word_cols[j])))
                union = list(map(operator.sub, map(operator.add, sizes[i], sizes[j]), common))
                if 0 in union:  # two texts without a word: alike
                    scores = [c / u if u else 1.0 for c, u in zip(common, union, strict=True)]
                else:
                    scores = list(map(operator.truediv, common, union))
                total = sum(scores, total)
                pairs += len(rows)
                columns.append((items, i, j, whos[i], whos[j], scores))
    out.similarity = total / pairs
    out.note = "text: descriptive similarity only (mean word overlap of the pairs within an item)"
    # Identical wording (similarity 1) is never among the most different, however few the pairs.
    lowest_scores = sorted(score for *_, scores in columns
                           for score in heapq.nsmallest(MOST_DIFFERENT, filter((1.0).__gt__, scores)))
    if lowest_scores:
        # Every pair as low as the MOST_DIFFERENT-th lowest score, then ordered by score and item.
        cut = lowest_scores[:MOST_DIFFERENT][-1]
        candidates: list[tuple[float, str, int, int, int, int]] = []
        for c, (items, i, j, _, _, scores) in enumerate(columns):
            at = list(compress(range(len(scores)), map(cut.__ge__, scores)))
            candidates += zip(map(scores.__getitem__, at), map(str, map(items.__getitem__, at)),
                              repeat(i), repeat(j), repeat(c), at)
        out.most_different = [{"item": columns[c][0][k], "similarity": score,
                               "a": names.get(columns[c][3], columns[c][3]), "b": names.get(columns[c][4], columns[c][4])}
                              for score, _, _, _, c, k in heapq.nsmallest(MOST_DIFFERENT, candidates)]
    return out


def round_or_none(value: float | None, digits: int = 3) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, digits)
