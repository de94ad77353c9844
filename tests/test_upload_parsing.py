"""The upload parser's row counting (progress totals), on files the end-to-end tests do not reach."""

from __future__ import annotations

import csv
import io
import json

from kennel.datasets.transfer import count_rows, iter_records


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([["id", "input"], *rows])
    return buf.getvalue()


def test_count_rows_matches_the_parser():
    cases = [
        _csv([["a", "1"], ["b", '{"q": "two\\nlines"}']]),
        _csv([["a", 'line one\nline two\n\nafter a blank line'], ["b", '"quoted" at the start'], ["c", "x"]]),
        _csv([["a", '""'], ["b", '"\n"']]) + "\r\n\r\n",  # blank lines at the end are skipped
        "id,input\n" + "\n".join(f"r{i},{i}" for i in range(7)),  # \n line ends, no final newline
        "id,input\r\n",
    ]
    for text in cases:
        data = text.encode()
        assert count_rows(data, "csv") == sum(1 for _ in iter_records(data, "csv")), text
    jsonl = "\n".join(json.dumps({"input": f"a\u2028b {i}"}, ensure_ascii=False) for i in range(5)) + "\n\n  \n"
    data = jsonl.encode()
    assert count_rows(data, "jsonl") == 5 == sum(1 for _ in iter_records(data, "jsonl"))
