"""The percentile sketch: DataDog's DDSketch (the ``ddsketch`` package) with a logarithmic
mapping. A sketch is a histogram of bins, so flowdeck keeps the bins as rows (one table per
rollup level, ``metric_bins_1m`` …) and merging two sketches is adding their counts per bin,
in SQL.

A value ``v > 0`` falls in bin ``ceil(ln(v) / ln(gamma))`` of the positive side, ``v < 0`` in
the bin of ``-v`` on the negative side, and values too close to 0 in the zero bin. The store
computes the bin in SQL with :data:`BIN_MULTIPLIER`. A quantile is found in SQL too
(:func:`quantile_sql`: the bin at the rank, chosen by the library's own rule) and the bin is
turned back into a value by the library's mapping (:func:`pick`), so the answer is the one
``BaseDDSketch.get_quantile_value`` gives over the same bins.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Final

from ddsketch.ddsketch import BaseDDSketch
from ddsketch.mapping import LogarithmicMapping
from ddsketch.store import DenseStore

# Every returned quantile is within 1 % of the true value at that rank.
RELATIVE_ACCURACY: Final = 0.01
MAPPING: Final = LogarithmicMapping(RELATIVE_ACCURACY)
BIN_MULTIPLIER: Final = 1.0 / math.log(MAPPING.gamma)
# Values whose magnitude is at most this count in the zero bin.
MIN_POSITIVE: Final = float(MAPPING.min_possible)
# Larger magnitudes have no bin the sketch can read back (about 1.76e308).
MAX_MAGNITUDE: Final = float(MAPPING.max_possible)

# (sign, bin, count): sign is 1, -1 or 0 (the zero bin, whose bin number is 0).
Bin = tuple[int, int, int]


def bin_sql(value: str) -> tuple[str, str]:
    """SQL for the (sign, bin) of the double ``value``; parameters ``:kmul`` and ``:kmin``."""
    sign = f"CASE WHEN {value} > :kmin THEN 1 WHEN {value} < -:kmin THEN -1 ELSE 0 END"
    key = (
        f"CASE WHEN abs({value}) > :kmin "
        f"THEN CAST(ceil(ln(abs({value})) * :kmul) AS BIGINT) ELSE 0 END"
    )
    return sign, key


def bin_params() -> dict[str, float]:
    return {"kmul": BIN_MULTIPLIER, "kmin": MIN_POSITIVE}


def sketch_of(bins: Iterable[Bin]) -> BaseDDSketch:
    """A DDSketch holding these bins (counts of one key may repeat: they add up)."""
    positive, negative = DenseStore(), DenseStore()
    zero = 0.0
    for sign, key, count in bins:
        if sign > 0:
            positive.add(key, float(count))
        elif sign < 0:
            negative.add(key, float(count))
        else:
            zero += count
    return BaseDDSketch(MAPPING, positive, negative, zero)


def quantile(bins: Iterable[Bin], q: float) -> float | None:
    """The value at quantile ``q`` (0..1) of the values these bins count; None when empty.
    The value at rank ``q * (count - 1)`` is returned within RELATIVE_ACCURACY."""
    value = sketch_of(bins).get_quantile_value(q)
    return None if value is None else float(value)


def bin_of(value: float) -> tuple[int, int]:
    """The (sign, bin) of a value, as the SQL of :func:`bin_sql` computes it."""
    if value > MIN_POSITIVE:
        return 1, math.ceil(math.log(value) * BIN_MULTIPLIER)
    if value < -MIN_POSITIVE:
        return -1, math.ceil(math.log(-value) * BIN_MULTIPLIER)
    return 0, 0


def quantile_sql(bins: str, count: int = 1) -> str:
    """SQL of ``count`` quantiles (parameters ``:q0`` … ``:q{count-1}``, each 0..1) of each
    ``(g, sb)`` of ``bins``: a query of rows ``(g, sb, sign, bin, n)`` with one row per
    distinct ``(g, sb, sign, bin)``. The answer has a row per ``(g, sb)``, ordered: ``g, sb,
    count, negative count, zero count, largest negative bin, largest positive bin`` and then,
    per quantile, the negative and the positive bin :func:`pick` chooses from. A bin
    qualifies as ``DenseStore.key_at_rank`` would take it, in the same floating-point
    arithmetic (the counts are whole numbers, exact in a double). One pass finds them all."""
    ranks = ", ".join(
        f"CAST(:q{i} AS DOUBLE PRECISION) * (total - 1) AS r{i}" for i in range(count)
    )
    chosen = ",\n    ".join(
        f"min(CASE WHEN sign < 0 AND neg - (cum - n) >= neg - r{i} - 1 + 1 THEN bin END), "
        f"min(CASE WHEN sign > 0 AND cum - neg - zero > r{i} - zero - neg THEN bin END)"
        for i in range(count)
    )
    return f"""
WITH merged AS ({bins}),
running AS (
    SELECT g, sb, sign, bin,
        CAST(n AS DOUBLE PRECISION) AS n,
        CAST(sum(n) OVER (PARTITION BY g, sb ORDER BY sign, sign * bin
                          ROWS UNBOUNDED PRECEDING) AS DOUBLE PRECISION) AS cum,
        CAST(sum(n) OVER (PARTITION BY g, sb) AS DOUBLE PRECISION) AS total,
        CAST(sum(CASE WHEN sign < 0 THEN n ELSE 0 END) OVER (PARTITION BY g, sb)
             AS DOUBLE PRECISION) AS neg,
        CAST(sum(CASE WHEN sign = 0 THEN n ELSE 0 END) OVER (PARTITION BY g, sb)
             AS DOUBLE PRECISION) AS zero
    FROM merged
),
ranked AS (
    SELECT g, sb, sign, bin, n, cum, total, neg, zero, {ranks}
    FROM running
)
SELECT g, sb, CAST(max(total) AS BIGINT), CAST(max(neg) AS BIGINT), CAST(max(zero) AS BIGINT),
    max(CASE WHEN sign < 0 THEN bin END),
    max(CASE WHEN sign > 0 THEN bin END),
    {chosen}
FROM ranked GROUP BY g, sb ORDER BY g, sb
"""


def quantile_params(qs: Sequence[float]) -> dict[str, float]:
    """The parameters of :func:`quantile_sql` for these quantiles."""
    return {f"q{i}": q for i, q in enumerate(qs)}


def picks(qs: Sequence[float], row: Sequence[Any]) -> list[float]:
    """The values of ``qs`` from a row of :func:`quantile_sql` past its ``g, sb`` columns."""
    count, negative, zero, negative_max, positive_max = row[:5]
    return [
        pick(q, count, negative, zero, row[5 + 2 * i], negative_max, row[6 + 2 * i], positive_max)
        for i, q in enumerate(qs)
    ]


def pick(
    q: float,
    count: int,
    negative: int,
    zero: int,
    negative_bin: int | None,
    negative_max: int | None,
    positive_bin: int | None,
    positive_max: int | None,
) -> float:
    """The value at quantile ``q`` from a row of :func:`quantile_sql`, as
    ``BaseDDSketch.get_quantile_value`` computes it: the side by the rank, then the bin the
    SQL found there (the side's largest bin if none qualified, as ``key_at_rank`` falls back
    to its ``max_key``), turned into a value by the mapping."""
    rank = q * (float(count) - 1)
    if rank < negative:
        key = negative_bin if negative_bin is not None else negative_max
        assert key is not None
        return -float(MAPPING.value(key))
    if rank < float(zero) + float(negative):
        return 0.0
    key = positive_bin if positive_bin is not None else positive_max
    assert key is not None
    return float(MAPPING.value(key))
