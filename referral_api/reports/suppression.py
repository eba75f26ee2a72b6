"""Small-cell suppression as CTDC does it, with complementary suppression.

A count above zero and under the threshold `k` is suppressed (primary suppression). Then, for every
group of cells whose sum another answer could release (the grand total, and every marginal: the cells
sharing the values of any subset of the grouping dimensions), the suppressed cells of the group must
not be recoverable by subtraction: when a group holds suppressed cells whose sum is under `k` (one
suppressed cell alone is always recoverable), the smallest released non-zero cell of the group is
suppressed too, and so on until no group is left that way. When a group has no released non-zero
cell left, its sum is the sum of suppressed cells and under `k`, so the marginal is itself a
suppressed cell wherever it is released (and the grand total of this answer is suppressed).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Hashable, Mapping

Key = tuple[Hashable, ...]


def suppress(cells: Mapping[Key, int], *, k: int, total: int | None = None) -> tuple[set[Key], bool]:
    """The keys of `cells` to suppress, and whether the grand `total` must be suppressed too."""
    suppressed = {key for key, value in cells.items() if 0 < value < k}
    dims = len(next(iter(cells))) if cells else 0
    subsets = [s for n in range(dims) for s in itertools.combinations(range(dims), n)]
    total_hidden = total is not None and 0 < total < k
    changed = True
    while changed:
        changed = False
        for fixed in subsets:
            groups: dict[Key, list[Key]] = defaultdict(list)
            for key in cells:
                groups[tuple(key[i] for i in fixed)].append(key)
            for members in groups.values():
                hidden = [m for m in members if m in suppressed and cells[m] > 0]
                if not hidden or (len(hidden) > 1 and sum(cells[m] for m in hidden) >= k):
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
