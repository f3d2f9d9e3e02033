"""A re-ingest diffed against the store's previous file (services/previous_feed.py) ends exactly
as the full diff would: the same levels, rows written, ledger, events, changes and counts,
whatever other writers did in between (bookings, order steps, counts, adjustments, safety
stock, the expiry sweep), across days and settings, with the kept file lost or not; and it
sends only what may change."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import func, literal_column, select

from stockhub import feeds, ids
from stockhub.db.engine import is_postgres
from stockhub.db.tables import events, stock_levels, stock_movements, uploads
from stockhub.domain.orders import Action
from stockhub.errors import ServiceError
from stockhub.jobs.sweeps import expire_stale_stock
from stockhub.jobs.worker import Worker
from stockhub.services import ingest, previous_feed, safety_stock, stock_writes, tenancy
from stockhub.services import orders as order_service
from stockhub.services import uploads as upload_service
from stockhub.services import events as event_log


def _gtin(body: str) -> str:
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


PRODUCTS = ["9780141383743", "4006381333931", _gtin("501234567890"), _gtin("501234567891"), _gtin("501234567892")]
LEVEL = ("on_hand", "committed", "safety_stock", "safety_stock_override", "price_minor", "currency", "promotion_minor", "last_reported_on", "expired")
MOVEMENT = ("identifier", "reason", "on_hand_before", "on_hand_after", "committed_before", "committed_after")
CHANGE = ("identifier", "on_hand_before", "on_hand", "committed", "safety_stock", "expired", "price_minor", "currency", "promotion_minor")
UPLOAD = ("status", "changed_count", "line_count", "valid_count", "rejected_count", "in_stock_count", "warnings", "error")


class Clock:
    """The ingest's clock, moved on a day at a time (the full diff touches unchanged rows once a day)."""

    def __init__(self):
        self.days = 0

    def now(self, tz=None):
        return datetime.now(UTC) + timedelta(days=self.days)


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()

    class Shifted(datetime):
        @classmethod
        def now(cls, tz=None):
            return clock.now(tz)

    monkeypatch.setattr(ingest, "datetime", Shifted)
    return clock


@pytest.fixture
def sent(monkeypatch):
    """(store, rows sent, rows in the file) of every stock apply."""
    seen = []
    real = previous_feed.rows_to_send

    def spy(conn, store_id, previous, rows):
        chosen = real(conn, store_id, previous, rows)
        seen.append((store_id, chosen.height, rows.height))
        return chosen

    monkeypatch.setattr(previous_feed, "rows_to_send", spy)
    return seen


def _file(rows: list[tuple[str, int, int, int | None, int | None]], with_safety: bool) -> str:
    """(product, price in pence, quantity, promotion in pence, safety stock) rows as a CSV."""
    header = "barcode,price,quantity,promotion_amount" + (",safety_stock" if with_safety else "")
    lines = []
    for product, price, quantity, promotion, safety in rows:
        cells = [product, f"{price / 100:.2f}", str(quantity), "" if promotion is None else f"{promotion / 100:.2f}"]
        lines.append(",".join(cells + ([("" if safety is None else str(safety))] if with_safety else [])))
    return "\n".join([header, *lines]) + "\n"


class Store:
    """One store and what was seen of it so far."""

    def __init__(self, hub, tenant, name: str):
        made = tenancy.create_store_for(hub, tenant.brand, {"name": name, "country": "GB"})
        self.hub, self.id, self.number = hub, made.id, ids.decode("store", made.id)
        self.organization = ids.decode("organization", tenant.organization)
        self.seen = self._state()

    def _state(self) -> dict:
        with self.hub.engine.connect() as conn:
            written = [stock_levels.c.updated_at] + ([literal_column("stock_levels.xmin::text").label("xmin")] if is_postgres(conn) else [])
            levels = {
                row.identifier: row
                for row in conn.execute(select(stock_levels, *written[1:]).where(stock_levels.c.store_id == self.number))
            }
            last_movement = conn.execute(select(func.max(stock_movements.c.id))).scalar() or 0
            last_event = conn.execute(select(func.max(events.c.id))).scalar() or 0
            last_upload = conn.execute(select(func.max(uploads.c.id))).scalar() or 0
        return {"levels": levels, "movement": last_movement, "event": last_event, "upload": last_upload}

    def step(self) -> dict:
        """What changed since the last step, in terms that do not name the store or the time."""
        before, now = self.seen, self._state()
        self.seen = now
        with self.hub.engine.connect() as conn:
            movements = conn.execute(
                select(*(stock_movements.c[c] for c in MOVEMENT), stock_movements.c.upload_id.is_not(None).label("by_upload"))
                .where(stock_movements.c.store_id == self.number, stock_movements.c.id > before["movement"])
            ).all()
            written_events = conn.execute(
                select(events.c.id, events.c.type, events.c.data, events.c.change_count)
                .where(events.c.store_id == self.number, events.c.id > before["event"])
                .order_by(events.c.id)
            ).all()
            changes = [
                ("inventory.updated", *(getattr(change, c) for c in CHANGE))
                for listed in event_log.changes_of(conn, written_events).values()
                for change in listed
            ]
            outcomes = conn.execute(
                select(*(uploads.c[c] for c in UPLOAD)).where(uploads.c.store_id == self.number, uploads.c.id > before["upload"]).order_by(uploads.c.id)
            ).all()
        old, new = before["levels"], now["levels"]
        rewritten = sorted(
            identifier for identifier, row in new.items()
            if identifier not in old or any(getattr(row, c) != getattr(old[identifier], c) for c in ("updated_at", "xmin") if c in row._fields)
        )
        return {
            "levels": {identifier: tuple(getattr(row, c) for c in LEVEL) for identifier, row in new.items()},
            "rewritten": rewritten,
            "ledger": Counter(tuple(row) for row in movements),
            "events": [(row.type, row.change_count, _comparable(row.type, row.data)) for row in written_events],
            "changes": Counter(tuple(row) for row in changes),
            "uploads": [tuple(row) for row in outcomes],
        }


def _comparable(kind: str, data: str) -> dict:
    body = json.loads(data)
    if kind == "upload.processed":
        return {k: body[k] for k in ("status", "type", "counts", "warnings", "error")}
    if kind == "inventory.updated":
        return {"upload": body["upload_id"] is not None, "batch": body["batch"], "batches": body["batches"]}
    return {}  # orders and stores: their ids differ


def make_machine(hub, tenant, tmp_path, clock, full_stores: set[int]):
    class TwoStores(RuleBasedStateMachine):
        """The same steps at two stores: `kept` diffs re-ingests against its previous file,
        `full` always diffs the whole file; after every step they must have changed alike."""

        def __init__(self):
            super().__init__()
            self.kept = Store(hub, tenant, "Kept")
            self.full = Store(hub, tenant, "Full")
            full_stores.add(self.full.number)
            self.n = 0
            self.orders: list[tuple[str, str]] = []

        def _next(self) -> int:
            self.n += 1
            return self.n

        def both(self, action) -> None:
            for store in (self.kept, self.full):
                action(store)

        @initialize(rows=st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(100, 102), st.integers(0, 6), st.none(), st.none()), min_size=1, unique_by=lambda r: r[0]))
        def first_file(self, rows):
            self.upload(rows, with_safety=False)

        @rule(
            rows=st.lists(
                st.tuples(
                    st.sampled_from(PRODUCTS), st.integers(100, 102), st.integers(-2, 6),
                    st.one_of(st.none(), st.integers(50, 51)), st.one_of(st.none(), st.integers(0, 2)),
                ),
                max_size=len(PRODUCTS), unique_by=lambda r: r[0],
            ),
            with_safety=st.booleans(),
        )
        def upload(self, rows, with_safety):
            body = _file(rows, with_safety)
            n = self._next()

            def send(store):
                path = tmp_path / f"stock-{store.number}-{n}.csv"
                path.write_text(body)
                upload_service.import_file(hub, store.id, path)
                assert Worker(hub).run_until_idle() >= 1

            self.both(send)

        @rule()
        def the_same_file_again(self):
            """Re-upload each store's last file as it was (the case the kept file is for)."""
            def again(store):
                with hub.engine.connect() as conn:
                    path = conn.execute(select(uploads.c.path).where(uploads.c.store_id == store.number).order_by(uploads.c.id.desc()).limit(1)).scalar()
                copy = tmp_path / f"again-{store.number}-{self._next()}.csv"
                with hub.storage.open(path) as source:
                    copy.write_bytes(source.read())
                upload_service.import_file(hub, store.id, copy)
                assert Worker(hub).run_until_idle() >= 1

            self.both(again)

        @rule(lines=st.lists(st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 3)), min_size=1, max_size=2, unique_by=lambda l: l[0]))
        def book(self, lines):
            n = self._next()
            made = []

            def booking(store):
                try:
                    order, _ = order_service.book(hub, store.organization, order_service.Booking(
                        external_id=f"{store.number}-{n}", channel={"type": "web", "name": "machine"}, currency="GBP",
                        lines=[{"identifier": p, "quantity": q, "unit_price": "1"} for p, q in lines],
                        fulfilment={"type": "pickup", "store_id": store.id},
                    ))
                    made.append(ids.encode("order", order.row.id))
                except ServiceError:
                    made.append(None)

            self.both(booking)
            assert (made[0] is None) == (made[1] is None)
            if made[0] is not None:
                self.orders.append((made[0], made[1]))

        @precondition(lambda self: self.orders)
        @rule(data=st.data(), action=st.sampled_from(list(Action)), restock=st.booleans())
        def order_step(self, data, action, restock):
            pair = data.draw(st.sampled_from(self.orders))
            outcomes = []
            for store, order in zip((self.kept, self.full), pair, strict=True):
                try:
                    order_service.step(hub, store.organization, order, action, restock=restock)
                    outcomes.append(True)
                except ServiceError:
                    outcomes.append(False)
            assert outcomes[0] == outcomes[1]

        @rule(product=st.sampled_from(PRODUCTS), delta=st.integers(-3, 3))
        def adjust(self, product, delta):
            def adjusting(store):
                try:
                    stock_writes.adjust(hub, store.organization, store.id, stock_writes.Adjustments(adjustments=[{"identifier": product, "delta": delta}]), None)
                except ServiceError:
                    pass

            self.both(adjusting)

        @rule(product=st.sampled_from(PRODUCTS), on_hand=st.integers(0, 6), price=st.sampled_from([None, "1.01", "1.05"]))
        def count(self, product, on_hand, price):
            def counting(store):
                try:
                    stock_writes.set_count(hub, store.organization, store.id, product, stock_writes.Count(on_hand=on_hand, price=price))
                except ServiceError:
                    pass

            self.both(counting)

        @rule(quantity=st.integers(0, 2))
        def store_safety_stock(self, quantity):
            self.both(lambda store: safety_stock.set_store_default(hub, None, store.id, quantity))

        @rule(product=st.sampled_from(PRODUCTS), quantity=st.one_of(st.none(), st.integers(0, 2)))
        def product_safety_stock(self, product, quantity):
            def setting(store):
                try:
                    safety_stock.set_product(hub, None, store.id, product, quantity)
                except ServiceError:
                    pass

            self.both(setting)

        @rule(means_available=st.booleans())
        def quantities_mean(self, means_available):
            changes = tenancy.StoreChanges(feed_quantity_means="available" if means_available else "on_hand")
            self.both(lambda store: tenancy.update_store(hub, store.organization, store.id, changes))

        @rule()
        def expiry_sweep(self):
            expire_stale_stock(hub, now=clock.now() + timedelta(days=hub.settings.expiry_days + 1))

        @rule()
        def next_day(self):
            clock.days += 1

        @rule()
        def kept_file_lost(self):
            previous_feed.forget_kept(hub)
            for stored in hub.storage.list(f"previous/{self.kept.number}"):
                hub.storage.delete(stored.key)

        @invariant()
        def both_stores_changed_alike(self):
            kept, full = self.kept.step(), self.full.step()
            assert kept == full

    return TwoStores


def _run(hub, tenant, tmp_path, clock, monkeypatch, examples: int, derandomize: bool = False) -> None:
    full_stores: set[int] = set()
    real_load = previous_feed.load
    monkeypatch.setattr(previous_feed, "load", lambda hub, store_id, *rest: None if store_id in full_stores else real_load(hub, store_id, *rest))
    run_state_machine_as_test(
        make_machine(hub, tenant, tmp_path, clock, full_stores),
        settings=settings(max_examples=examples, stateful_step_count=18, deadline=None, suppress_health_check=list(HealthCheck), derandomize=derandomize),
    )


def test_a_re_ingest_sent_only_what_may_change_ends_as_the_full_diff(hub, tenant, tmp_path, clock, sent, monkeypatch):
    # The same 20 examples on every run: whether random ones re-ingest a store with its kept file
    # is chance (a full run saw none), and that they do is asserted here.
    _run(hub, tenant, tmp_path, clock, monkeypatch, examples=20, derandomize=True)
    assert any(chosen < rows for _, chosen, rows in sent)  # the kept file was used


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_when_applied_in_parts(hub, tenant, tmp_path, clock, sent, monkeypatch):
    hub.settings.apply_part_rows = 1  # every file of more than one row goes a row per transaction
    # Applied in parts, a file's own changed rows are staged before its watermark, so the next file
    # sends them again: the kept file is used less often, and in 10 random examples maybe never.
    # What this holds is the equivalence, checked after every step; the test above holds the use.
    _run(hub, tenant, tmp_path, clock, monkeypatch, examples=10)


def _ingest(hub, store_id: str, path, body: str) -> None:
    path.write_text(body)
    upload_service.import_file(hub, store_id, path)
    assert Worker(hub).run_until_idle() >= 1


def test_only_new_different_held_back_and_otherwise_changed_rows_are_sent(hub, tenant, tmp_path, clock, sent):
    organization = ids.decode("organization", tenant.organization)
    number = ids.decode("store", tenant.store)
    rows = [(p, 100, 5, None, None) for p in PRODUCTS[:4]]
    _ingest(hub, tenant.store, tmp_path / "a.csv", _file(rows, False))
    _ingest(hub, tenant.store, tmp_path / "b.csv", _file(rows, False))
    assert sent[-1] == (number, 0, 4)  # nothing changed: nothing to send

    rows[0] = (PRODUCTS[0], 100, 6, None, None)  # a different count
    rows.append((PRODUCTS[4], 100, 1, None, None))  # a new product
    stock_writes.set_count(hub, organization, tenant.store, PRODUCTS[1], stock_writes.Count(on_hand=9))  # changed by another writer
    _ingest(hub, tenant.store, tmp_path / "c.csv", _file(rows, False))
    assert sent[-1] == (number, 3, 5)
    with hub.engine.connect() as conn:
        on_hand = dict(conn.execute(select(stock_levels.c.identifier, stock_levels.c.on_hand).where(stock_levels.c.store_id == number)).all())
    assert on_hand == {feeds.lookup_identifier(p): n for p, n in zip(PRODUCTS, [6, 5, 5, 5, 1], strict=True)}

    order_service.book(hub, organization, order_service.Booking(
        external_id="held", channel={"type": "web", "name": "t"}, currency="GBP",
        lines=[{"identifier": PRODUCTS[2], "quantity": 4, "unit_price": "1"}], fulfilment={"type": "pickup", "store_id": tenant.store},
    ))
    rows[2] = (PRODUCTS[2], 100, 1, None, None)  # fewer than the 4 the order holds: held back
    _ingest(hub, tenant.store, tmp_path / "d.csv", _file(rows, False))
    assert sent[-1] == (number, 1, 5)
    _ingest(hub, tenant.store, tmp_path / "e.csv", _file(rows, False))
    assert sent[-1] == (number, 1, 5)  # still held back: counted and warned about again
    with hub.engine.connect() as conn:
        warnings = conn.execute(select(uploads.c.warnings).order_by(uploads.c.id.desc()).limit(1)).scalar_one()
    assert "1 products reported fewer units than are committed" in warnings


def test_without_a_usable_previous_file_the_whole_file_is_sent(hub, tenant, tmp_path, clock, sent):
    number = ids.decode("store", tenant.store)
    body = _file([(p, 100, 5, None, None) for p in PRODUCTS], False)
    _ingest(hub, tenant.store, tmp_path / "a.csv", body)
    assert sent[-1] == (number, 5, 5)  # the first file

    clock.days += 1
    _ingest(hub, tenant.store, tmp_path / "b.csv", body)
    assert sent[-1] == (number, 5, 5)  # another day: every row is reported again
    _ingest(hub, tenant.store, tmp_path / "c.csv", body)
    assert sent[-1] == (number, 0, 5)

    organization = ids.decode("organization", tenant.organization)
    tenancy.update_store(hub, organization, tenant.store, tenancy.StoreChanges(feed_quantity_means="available"))
    _ingest(hub, tenant.store, tmp_path / "d.csv", body)
    assert sent[-1] == (number, 5, 5)  # the quantities mean something else now

    _ingest(hub, tenant.store, tmp_path / "e.csv", body)
    assert sent[-1] == (number, 0, 5)
    previous_feed.forget_kept(hub)  # a worker that did not apply the last file reads it from storage
    _ingest(hub, tenant.store, tmp_path / "f.csv", body)
    assert sent[-1] == (number, 0, 5)

    previous_feed.forget_kept(hub)
    for stored in hub.storage.list(f"previous/{number}"):
        hub.storage.delete(stored.key)
    _ingest(hub, tenant.store, tmp_path / "g.csv", body)
    assert sent[-1] == (number, 5, 5)  # the kept file lost
    previous_feed.wait_kept(hub)
    assert [stored.key.rsplit("/", 1)[1] for stored in hub.storage.list(f"previous/{number}")] == [f"{_last_upload(hub)}.arrow"]


def _last_upload(hub) -> int:
    with hub.engine.connect() as conn:
        return conn.execute(select(func.max(uploads.c.id))).scalar_one()
