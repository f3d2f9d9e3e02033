"""Statements sent in flights (db.flights) answer as SQLAlchemy's execution does, and a booking's
changed levels go to PostgreSQL as array literals that read back as the values they were."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest
import sqlalchemy.exc
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, insert, select

from stockhub.db.engine import make_engine
from stockhub.db.flights import Flight
from stockhub.db.level_writes import array_literal
from stockhub.db.tables import organizations


@pytest.fixture(scope="module")
def pg(postgres_database):
    with psycopg.connect(postgres_database, autocommit=True) as conn:
        yield conn


texts = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | texts, max_size=8))
def test_text_arrays_read_back_as_given(pg, values):
    assert pg.execute("SELECT %s::text[]", (array_literal(values),)).fetchone()[0] == values


@settings(max_examples=100, deadline=None)
@given(st.lists(st.none() | st.integers(-(2**63), 2**63 - 1), max_size=8), st.lists(st.none() | st.booleans(), max_size=8),
       st.lists(st.none() | st.dates(), max_size=4), st.lists(st.none() | st.datetimes(), max_size=4))
def test_typed_arrays_read_back_as_given(pg, numbers, flags, days, times):
    row = pg.execute(
        "SELECT %s::bigint[], %s::bool[], %s::date[], %s::timestamp[]",
        (array_literal(numbers), array_literal(flags), array_literal(days), array_literal(times)),
    ).fetchone()
    assert list(row) == [numbers, flags, days, times]


NEW_ORGANIZATION = insert(organizations).values(name=bindparam("name"), created_at=bindparam("created_at"))


def test_a_flight_answers_as_sqlalchemy_does(database_url):
    engine = make_engine(database_url)
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            with Flight(conn) as flight:
                flight.generic_plans()
                made = flight.send(NEW_ORGANIZATION.returning(organizations.c.id), {"name": "Flown", "created_at": now})
                read = flight.send(select(organizations.c.name, organizations.c.created_at).where(organizations.c.name == "Flown"), {})
            assert made.scalar() is not None
            assert [tuple(row) for row in read.rows()] == [("Flown", now)]  # timestamps come back aware, as tables.UTCDateTime gives them
            assert read.rows()[0].name == "Flown"
        with engine.connect() as conn:
            assert conn.execute(select(organizations.c.id).where(organizations.c.name == "Flown")).scalar() == made.scalar()
    finally:
        engine.dispose()


def test_a_failed_flight_raises_sqlalchemys_error_and_changes_nothing(database_url):
    engine = make_engine(database_url)
    try:
        with pytest.raises(sqlalchemy.exc.IntegrityError):
            with engine.begin() as conn:
                with Flight(conn) as flight:
                    flight.send(NEW_ORGANIZATION, {"name": "Twice", "created_at": datetime.now(UTC)})
                    flight.send(NEW_ORGANIZATION, {"name": None, "created_at": datetime.now(UTC)})
                    flight.commit()
        with engine.connect() as conn:
            assert conn.execute(select(organizations.c.id).where(organizations.c.name == "Twice")).first() is None
    finally:
        engine.dispose()


def test_date_and_datetime_elements_are_iso_text():
    assert array_literal([date(2026, 1, 2), datetime(2026, 1, 2, 3, 4, 5, 6), None, 'a"b\\c', True, 7]) == (
        '{"2026-01-02","2026-01-02T03:04:05.000006",NULL,"a\\"b\\\\c",t,7}'
    )


def test_flights_on_one_connection_survive_its_rollbacks_and_drops(database_url):
    """A flight prepares its statements once per connection; what else runs on the connection
    (a rolled-back transaction, a DROP, as an ingest's staging table does) must not lose them."""
    engine = make_engine(database_url)
    read = select(organizations.c.name).where(organizations.c.name == bindparam("name"))
    try:
        with engine.connect() as conn:
            for attempt in range(3):
                with conn.begin():
                    with Flight(conn) as flight:
                        flight.send(NEW_ORGANIZATION, {"name": f"Kept {attempt}", "created_at": datetime.now(UTC)})
                        found = flight.send(read, {"name": f"Kept {attempt}"})
                    assert found.scalar() == f"Kept {attempt}"
                with pytest.raises(sqlalchemy.exc.IntegrityError), conn.begin():
                    for _ in range(6):  # a statement run often (psycopg would prepare it by itself)
                        conn.execute(select(organizations.c.id).limit(1))
                    conn.execute(NEW_ORGANIZATION, {"name": None, "created_at": datetime.now(UTC)})
                with conn.begin():
                    conn.exec_driver_sql("CREATE TEMP TABLE scratch (n int)" if conn.dialect.name == "postgresql" else "CREATE TABLE scratch (n int)")
                    conn.exec_driver_sql("DROP TABLE scratch")
    finally:
        engine.dispose()
