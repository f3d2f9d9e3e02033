"""Hand-run sanity check (not a test): parse and validate a 1,000,000-row stock file.

    .venv/bin/python tests/feeds/bench_million_rows.py
"""

import random
import time

from stdnum import ean

from stockhub.feeds import read_stock_file

ROWS = 1_000_000


def make_csv(rows: int) -> bytes:
    rng = random.Random(42)
    lines = ["barcode,price,quantity,currency,promotion_amount"]
    for i in range(rows):
        body = f"{rng.randrange(10**11, 10**12):012d}"
        barcode = body + ean.calc_check_digit(body)
        if i % 50 == 0:
            barcode = barcode[:-1] + str((int(barcode[-1]) + 1) % 10)  # bad check digit
        promo = f"{rng.randrange(1, 500) / 100:.2f}" if i % 10 == 0 else ""
        lines.append(f"{barcode},{rng.randrange(500, 10000) / 100:.2f},{rng.randrange(-2, 200)},GBP,{promo}")
    return ("\n".join(lines) + "\n").encode()


if __name__ == "__main__":
    data = make_csv(ROWS)
    print(f"{len(data) / 1e6:.1f} MB")
    for _ in range(3):
        start = time.perf_counter()
        result = read_stock_file(data, default_currency="GBP")
        elapsed = time.perf_counter() - start
        print(
            f"{elapsed:.2f} s: {result.line_count} lines, {result.rows.height} valid,"
            f" {result.rejections.height} rejections, {result.superseded_count} superseded"
        )
