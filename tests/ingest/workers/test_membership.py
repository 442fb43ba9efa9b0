"""The shared group's membership table: who may leave, who parks, which session is adopted."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from ingest.mqtt import membership
from ingest.mqtt.membership import Orphan

FILTER = "$share/g/rpm/+/readings"


def join(pool: ConnectionPool, *client_ids: str, group: str = "g") -> None:
    with pool.connection() as conn, conn.transaction():
        for client_id in client_ids:
            membership.join(conn, client_id=client_id, group=group, topic_filter=FILTER)


def rows(pool: ConnectionPool) -> dict[str, str]:
    with pool.connection() as conn:
        return dict(conn.execute("SELECT client_id, state FROM mqtt_group_members").fetchall())


def may_leave(pool: ConnectionPool, client_id: str, fresh_s: float = 30) -> bool:
    with pool.connection() as conn, conn.transaction():
        return membership.may_leave(conn, client_id=client_id, group="g", fresh_s=fresh_s)


def claim(pool: ConnectionPool, client_id: str, stale_s: float = 120) -> Orphan | None:
    with pool.connection() as conn, conn.transaction():
        return membership.claim_orphan(conn, client_id=client_id, group="g", stale_s=stale_s)


def age(pool: ConnectionPool, client_id: str, seconds: int) -> None:
    with pool.connection() as conn:
        conn.execute(
            "UPDATE mqtt_group_members SET seen_at = now() - make_interval(secs => %s) WHERE client_id = %s",
            (seconds, client_id),
        )


def test_members_leave_while_another_is_alive_and_the_last_one_parks(pool: ConnectionPool) -> None:
    join(pool, "a", "b", "c")
    join(pool, "x", group="other")  # another group does not count
    assert may_leave(pool, "c")
    assert may_leave(pool, "b")
    assert not may_leave(pool, "a")
    assert rows(pool) == {"a": "parked", "x": "active"}


def test_a_member_not_seen_recently_does_not_count_as_alive(pool: ConnectionPool) -> None:
    join(pool, "a", "b")
    age(pool, "b", 60)  # killed a minute ago
    assert not may_leave(pool, "a", fresh_s=30)
    assert rows(pool)["a"] == "parked"


def test_parked_and_long_unseen_sessions_are_adopted_once(pool: ConnectionPool) -> None:
    join(pool, "a", "b", "c", "d")
    assert not may_leave(pool, "a", fresh_s=0)  # parked
    age(pool, "b", 600)  # killed, never back
    age(pool, "c", 30)  # recent enough: not adopted
    first = claim(pool, "d")
    second = claim(pool, "d")
    assert {first, second} == {Orphan("a", FILTER), Orphan("b", FILTER)}
    assert claim(pool, "d") is None  # both now marked seen by their adopter
    assert claim(pool, "a") is None  # nothing of its own to adopt, c is still fresh enough


def test_joining_again_takes_the_session_back_and_forget_removes_it(pool: ConnectionPool) -> None:
    join(pool, "a")
    assert not may_leave(pool, "a")
    join(pool, "a")  # the owner came back under its client id
    assert rows(pool) == {"a": "active"}
    with pool.connection() as conn:
        membership.heartbeat(conn, ["a"])
        membership.forget(conn, "a")
    assert rows(pool) == {}
