"""Where a bag can be served from: distances, and which store(s) fulfil which lines.

Plain Python: the services read availability set-based and hand it over as dictionaries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from math import asin, cos, radians, sin, sqrt

EARTH_RADIUS_KM = 6371.0088  # the IUGG mean radius


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    p1, p2 = radians(lat1), radians(lat2)
    dp, dl = p2 - p1, radians(lon2 - lon1)
    h = sin(dp / 2) ** 2 + cos(p1) * cos(p2) * sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(h)))


Bag = Mapping[str, int]  # identifier → quantity
Stock = Mapping[int, Mapping[str, int]]  # store → identifier → available


def serves(bag: Bag, available: Mapping[str, int]) -> bool:
    return all(available.get(identifier, 0) >= quantity for identifier, quantity in bag.items())


def plan_shipments(bag: Bag, stock: Stock, preference: Sequence[int]) -> dict[str, int] | None:
    """Which store ships each line: one store serving the whole bag (the first in `preference`,
    e.g. nearest first), else the fewest shipments found greedily (each step takes the store
    serving the most remaining lines whole; ties to the preferred). A line is never split across
    stores. None: some line cannot be served whole by any store."""
    for store in preference:
        if serves(bag, stock.get(store, {})):
            return {identifier: store for identifier in bag}
    remaining, plan = dict(bag), {}
    while remaining:
        best, served = None, []
        for store in preference:
            here = [i for i, q in remaining.items() if stock.get(store, {}).get(i, 0) >= q]
            if len(here) > len(served):
                best, served = store, here
        if best is None:
            return None
        for identifier in served:
            plan[identifier] = best
            del remaining[identifier]
    return plan
