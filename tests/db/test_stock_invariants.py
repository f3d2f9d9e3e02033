"""Invariants 1 and 2 under any interleaving: committed ≤ max(on_hand, 0), and the ledger replays.

A hypothesis state machine drives the real services — uploads through the worker, bookings,
order steps, adjustments and counts — on SQLite and PostgreSQL, and checks after every step.
"""

from __future__ import annotations

from collections import defaultdict

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import select

from stockhub import ids
from stockhub.db.tables import order_lines, orders, stock_levels
from stockhub.domain.orders import Action
from stockhub.errors import Conflict, Invalid
from stockhub.jobs.worker import Worker
from stockhub.services import orders as order_service
from stockhub.services import stock_writes, tenancy, uploads
from stockhub.services.ledger import reconcile

PRODUCTS = ["9780141383743", "4006381333931", "036000291452"]


def make_machine(hub, tenant, tmp_path):
    class StockMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            made = tenancy.create_store_for(hub, tenant.brand, {"name": "Machine", "country": "GB"})
            self.store, self.number = made.id, ids.decode("store", made.id)
            self.organization = ids.decode("organization", tenant.organization)
            self.orders: list[str] = []
            self.n = 0

        def _next(self) -> int:
            self.n += 1
            return self.n

        @initialize()
        def stock_the_store(self):
            self.upload(counts=[10, 10, 10], means_available=False)

        @rule(counts=st.lists(st.integers(-3, 12), min_size=3, max_size=3), means_available=st.booleans())
        def upload(self, counts, means_available):
            tenancy.update_store(hub, self.organization, self.store, tenancy.StoreChanges(feed_quantity_means="available" if means_available else "on_hand"))
            path = tmp_path / f"stock-{self._next()}.csv"
            path.write_text("barcode,price,quantity\n" + "".join(f"{p},1.00,{c}\n" for p, c in zip(PRODUCTS, counts, strict=True)))
            uploads.import_file(hub, self.store, path)
            assert Worker(hub).run_until_idle() >= 1

        @rule(lines=st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 3)), min_size=1, max_size=3), preconfirmed=st.booleans())
        def book(self, lines, preconfirmed):
            booking = order_service.Booking(
                external_id=f"{self.store}-{self._next()}",  # unique across examples: they share the organization
                channel={"type": "web", "name": "machine"},
                currency="GBP",
                lines=[{"identifier": p, "quantity": q, "unit_price": "1"} for p, q in lines],
                fulfilment={"type": "pickup", "store_id": self.store},
                is_preconfirmed=preconfirmed,
            )
            try:
                order, _ = order_service.book(hub, self.organization, booking)
                self.orders.append(ids.encode("order", order.row.id))
            except Conflict:  # short: nothing was booked
                pass

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), action=st.sampled_from(list(Action)), restock=st.booleans())
        def step(self, data, action, restock):
            order = data.draw(st.sampled_from(self.orders))
            try:
                order_service.step(hub, self.organization, order, action, restock=restock)
            except Conflict:  # an illegal step
                pass

        @rule(product=st.sampled_from(PRODUCTS), delta=st.integers(-6, 6))
        def adjust(self, product, delta):
            body = stock_writes.Adjustments(adjustments=[{"identifier": product, "delta": delta}])
            try:
                stock_writes.adjust(hub, self.organization, self.store, body, f"adj-{self.store}-{self._next()}")
            except (Conflict, Invalid):  # below what orders hold, or not stocked yet
                pass

        @rule(product=st.sampled_from(PRODUCTS), on_hand=st.integers(-2, 12))
        def count(self, product, on_hand):
            try:
                stock_writes.set_count(hub, self.organization, self.store, product, stock_writes.Count(on_hand=on_hand, price="1"))
            except Conflict:  # below what orders hold
                pass

        @invariant()
        def nothing_is_oversold_and_the_ledger_replays(self):
            with hub.engine.connect() as conn:
                levels = conn.execute(select(stock_levels).where(stock_levels.c.store_id == self.number)).all()
                held = defaultdict(int)
                for line in conn.execute(
                    select(order_lines.c.identifier, order_lines.c.quantity)
                    .join(orders, orders.c.id == order_lines.c.order_id)
                    .where(order_lines.c.store_id == self.number, orders.c.status == "requested")
                ):
                    held[line.identifier] += line.quantity
            for level in levels:
                assert 0 <= level.committed <= max(level.on_hand, 0), level
                assert level.committed == held[level.identifier], level  # exactly what open orders hold
            assert reconcile(hub, self.number).is_empty()

    return StockMachine


@pytest.mark.parametrize("examples", [25])
def test_no_interleaving_oversells_or_breaks_the_ledger(hub, tenant, tmp_path, examples):
    run_state_machine_as_test(
        make_machine(hub, tenant, tmp_path),
        settings=settings(max_examples=examples, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)),
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_uploads_applied_in_parts_never_oversell_or_break_the_ledger(hub, tenant, tmp_path):
    hub.settings.apply_part_rows = 1  # on SQLite every upload of more than one row is applied a row per transaction
    run_state_machine_as_test(
        make_machine(hub, tenant, tmp_path),
        settings=settings(max_examples=25, stateful_step_count=20, deadline=None, suppress_health_check=list(HealthCheck)),
    )
