"""Small-cell suppression as CTDC does it, with complementary suppression.

A count above zero and under the threshold `k` is suppressed (primary suppression). Then, for every
group of cells whose sum another answer could release (the grand total, and every marginal: the cells
sharing the values of any subset of the grouping dimensions), the suppressed cells of the group must
not be recoverable by subtraction: when a group holds suppressed cells whose sum is under `k` (one
suppressed cell alone is always recoverable), the smallest released non-zero cell of the group is
suppressed too, and so on until no group is left that way. When a group has no released non-zero
cell left, its sum is the sum of suppressed cells and under `k`, so the marginal is itself a
suppressed cell wherever it is released (and the grand total of this answer is suppressed).

Known limit (README, Reports): each answer is suppressed alone. Another answer (another grouping of
the same period) chooses its own pattern, so together they can recover a cell one of them hides; and a
group whose only non-zero cell is a complementary suppressed one (at least `k`) has nothing left to
hide it with, so a coarser answer showing that group's marginal shows the cell.

A multi-valued dimension (`multi`: the exploitation type, where one referral counts in each of its
types) is no partition: along it a group's cells sum to its marginal plus the overlap (the units
counted twice or more), and the marginal is what a grouping without that dimension releases (`lines`:
per value of the other dimensions; the grand `total` for the whole table). So the overlap of every
group spanning that dimension, the sum of its cells minus its marginal, is a derived cell: while all
of the group's non-zero cells are released it must be 0 or at least `k` (in size), else the smallest
released non-zero cell of the group is suppressed too (then the overlap is no longer derivable, and
the rule above keeps that cell from being recovered).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Hashable, Mapping

Key = tuple[Hashable, ...]


def _groups(keys: list[Key], fixed: tuple[int, ...]) -> dict[Key, list[Key]]:
    groups: dict[Key, list[Key]] = defaultdict(list)
    for key in keys:
        groups[tuple(key[i] for i in fixed)].append(key)
    return groups


def _marginals(lines: Mapping[Key, int], multi: int, fixed: tuple[int, ...]) -> dict[Key, int]:
    """The marginals of the groups of `fixed` (a subset without `multi`), summed from `lines` (keyed by
    the values of every dimension but `multi`, in order)."""
    at = [i - (i > multi) for i in fixed]
    out: dict[Key, int] = defaultdict(int)
    for line, count in lines.items():
        out[tuple(line[i] for i in at)] += count
    return out


def _exposed(members: list[Key], cells: Mapping[Key, int], suppressed: set[Key], k: int) -> bool:
    """Whether the group's suppressed cells could be recovered from its sum (none, or 2+ reaching k, not)."""
    hidden = [m for m in members if m in suppressed and cells[m] > 0]
    return bool(hidden) and (len(hidden) == 1 or sum(cells[m] for m in hidden) < k)


def _small_overlap(
    members: list[Key], cells: Mapping[Key, int], suppressed: set[Key], k: int, marginal: int
) -> bool:
    """Whether the group's derived overlap (its cells' sum minus its marginal) is derivable and small."""
    if any(m in suppressed and cells[m] > 0 for m in members):
        return False
    return 0 < abs(sum(cells[m] for m in members) - marginal) < k


def suppress(
    cells: Mapping[Key, int],
    *,
    k: int,
    total: int | None = None,
    multi: int | None = None,
    lines: Mapping[Key, int] | None = None,
) -> tuple[set[Key], bool]:
    """The keys of `cells` to suppress, and whether the grand `total` must be suppressed too. With `multi`
    (the index of a multi-valued dimension), `lines` are the counts released by the grouping without it
    (keyed by the other dimensions' values; without `lines`, the table is that one dimension and
    `total` is its only line)."""
    suppressed = {key for key, value in cells.items() if 0 < value < k}
    keys = list(cells)
    dims = len(keys[0]) if keys else 0
    subsets = [s for n in range(dims) for s in itertools.combinations(range(dims), n)]
    total_hidden = total is not None and 0 < total < k
    if multi is not None and lines is None:
        lines = {(): total or 0}
    changed = True
    while changed:
        changed = False
        for fixed in subsets:
            spans = multi is not None and multi not in fixed and lines is not None
            marginals = _marginals(lines, multi, fixed) if spans else {}
            for value, members in _groups(keys, fixed).items():
                if not (
                    _exposed(members, cells, suppressed, k)
                    or (spans and _small_overlap(members, cells, suppressed, k, marginals.get(value, 0)))
                ):
                    continue
                shown = sorted(
                    (m for m in members if m not in suppressed and cells[m] > 0),
                    key=lambda m: (cells[m], repr(m)),
                )
                if shown:
                    suppressed.add(shown[0])
                    changed = True
                elif not fixed:
                    total_hidden = True
    return suppressed, total_hidden
