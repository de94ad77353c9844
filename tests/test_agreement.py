"""The agreement figures (kennel.annotations.agreement) against published worked examples.

Krippendorff's alpha: the reliability data of "Computing Krippendorff's Alpha-Reliability" (Krippendorff,
2011): 4 coders, 12 units, missing values; his published alphas are nominal 0.743, ordinal 0.815,
interval 0.849. Cohen's kappa: the textbook two-reader example (50 proposals, Yes/Yes 20, Yes/No 5,
No/Yes 10, No/No 15), kappa 0.4.
"""

from __future__ import annotations

import pytest

from kennel.annotations.agreement import (
    INTERVAL,
    NOMINAL,
    ORDINAL,
    SETS,
    TEXT,
    cohen_kappa,
    krippendorff_alpha,
    label_agreement,
    level_of,
    majority,
    text_similarity,
)

N = None
CODERS = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, N, N, N],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, N, 3],
    "C": [N, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, N],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, N],
}
UNITS = [[v for v in unit if v is not None] for unit in zip(*CODERS.values(), strict=True)]


@pytest.mark.parametrize(("level", "published"), [(NOMINAL, 0.743), (ORDINAL, 0.815), (INTERVAL, 0.849)])
def test_alpha_matches_krippendorffs_published_example(level: str, published: float) -> None:
    alpha = krippendorff_alpha(UNITS, level)
    assert alpha is not None and round(alpha, 3) == published


def test_alpha_through_label_agreement_matches_too() -> None:
    ratings = {u: {c: CODERS[c][u] for c in CODERS if CODERS[c][u] is not None} for u in range(12)}
    score = {"id": "q", "name": "q", "type": "score", "is_integer": True, "min": 1, "max": 5}
    found = label_agreement(score, ratings)
    assert found.level == ORDINAL and round(found.alpha or 0, 3) == 0.815
    # Unit 12 has one value: not pairable. 11 items, 4 coders, 40 pairable values.
    assert (found.items, found.reviewers, found.values) == (11, 4, 40)
    assert label_agreement({**score, "is_integer": False}, ratings).level == INTERVAL
    nominal = label_agreement({"id": "c", "name": "c", "type": "categorical", "values": list("12345")},
                              {u: {c: str(v) for c, v in r.items()} for u, r in ratings.items()})
    assert round(nominal.alpha or 0, 3) == 0.743


def test_multi_valued_categories_use_the_jaccard_distance() -> None:
    # One-element sets are exactly nominal.
    assert krippendorff_alpha([[[v] for v in u] for u in UNITS], SETS) == pytest.approx(
        krippendorff_alpha(UNITS, NOMINAL))
    # {a,b} against {a} is a half disagreement: alpha lies strictly between the all-or-nothing readings.
    units = [[["a", "b"], ["a"]], [["c"], ["c"]], [["a"], ["a"]], [["b"], ["c"]]]
    partial = krippendorff_alpha(units, SETS)
    strict = krippendorff_alpha([[tuple(v) for v in u] for u in units], NOMINAL)
    assert partial is not None and strict is not None and strict < partial < 1


def test_cohen_kappa_textbook_example() -> None:
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    # With two categories the quadratic weights are the unweighted ones.
    assert cohen_kappa(pairs, weighted=True) == pytest.approx(0.4)
    assert cohen_kappa([(1, 1), (2, 2), (3, 3)], weighted=True) == pytest.approx(1.0)
    # A one-step miss costs less than a two-step one under quadratic weights.
    near = cohen_kappa([(1, 1), (2, 3), (3, 3), (1, 2)], weighted=True)
    far = cohen_kappa([(1, 1), (2, 3), (3, 3), (1, 3)], weighted=True)
    assert near is not None and far is not None and near > far


def test_not_defined_where_it_is_not() -> None:
    assert krippendorff_alpha([[1], [2]], NOMINAL) is None           # no item has two ratings
    assert krippendorff_alpha([[1, 1], [1, 1]], NOMINAL) is None     # no variation
    assert krippendorff_alpha([[2.5, 2.5]], INTERVAL) is None
    assert cohen_kappa([]) is None
    assert cohen_kappa([("a", "a"), ("a", "a")]) is None             # chance agreement is already perfect
    lonely = label_agreement({"id": "x", "name": "x", "type": "boolean"}, {1: {"r1": True}, 2: {"r1": False}})
    assert lonely.alpha is None and lonely.items == 0 and "not defined" in lonely.note
    same = label_agreement({"id": "x", "name": "x", "type": "boolean"}, {1: {"r1": True, "r2": True}})
    assert same.alpha is None and same.percent_agreement == 1.0 and "same value" in same.note


def test_pairs_and_each_reviewer_against_the_others() -> None:
    ratings = {1: {"a": "x", "b": "x", "c": "y"}, 2: {"a": "y", "b": "y", "c": "y"},
               3: {"a": "x", "b": "x", "c": "x"}, 4: {"a": "y", "b": "x"}}
    found = label_agreement({"id": "l", "name": "l", "type": "categorical", "values": ["x", "y"]}, ratings,
                            {"a": "Ann", "b": "Bob", "c": "Cy"})
    pairs = {(p.a, p.b): p for p in found.pairs}
    assert set(pairs) == {("Ann", "Bob"), ("Ann", "Cy"), ("Bob", "Cy")}
    assert pairs[("Ann", "Bob")].items == 4 and pairs[("Ann", "Bob")].agreement == 0.75
    assert pairs[("Ann", "Cy")].items == 3
    against = {r.reviewer: r for r in found.versus_consensus}
    # Cy against the majority of Ann and Bob: items 2 and 3 (item 1's others agree on x; Cy said y).
    assert against["Cy"].items == 3 and against["Cy"].agreement == pytest.approx(2 / 3)
    # Ann: on item 1 the others split (x, y): no consensus, left out; on item 4 Bob alone is the consensus.
    assert against["Ann"].items == 3 and against["Ann"].agreement == pytest.approx(2 / 3)
    assert found.unanimous_items == 2
    # Pairs of ratings within items: item 1 has 1 agreeing pair of 3, items 2 and 3 all 3, item 4 none of 1.
    assert found.percent_agreement == pytest.approx(7 / 10)


def test_text_labels_get_similarity_only() -> None:
    ratings = {1: {"a": "The answer is polite", "b": "the answer is polite"},
               2: {"a": "wrong currency", "b": "totally unrelated words"}}
    found = label_agreement({"id": "t", "name": "t", "type": "text"}, ratings)
    assert found.level == TEXT and found.alpha is None and found.pairs == []
    assert found.similarity == pytest.approx(0.5)
    assert found.most_different[0]["item"] == 2
    assert text_similarity("a b", "b a") == 1.0


def test_levels_and_majority() -> None:
    assert level_of({"type": "boolean"}) == NOMINAL
    assert level_of({"type": "categorical"}, [["a"], "b"]) == SETS
    assert level_of({"type": "score", "is_integer": True, "min": 0, "max": 100}) == INTERVAL
    assert level_of({"type": "score", "is_integer": True, "min": 1, "max": 7}) == ORDINAL
    assert majority(["a", "a", "b"]) == "a" and majority(["a", "b"]) is None
