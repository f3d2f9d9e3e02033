"""Single stock lookups (GET /v1/stores/{store}/stock/{barcode}, 50 connections) beside the thin
app's one SELECT, the median of 3 runs: the lookup part of bench/orders/run.py alone.

    .venv/bin/python bench/lookup/run.py [--quick] [--lookups 5000] [--products 100000]
"""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    module = runpy.run_path(str(Path(__file__).resolve().parents[1] / "orders" / "run.py"), run_name="bench_orders")
    module["main"](only_lookups=True)
    sys.exit(0)
