"""Faults across real processes: ``rpm-ingest serve --workers 3`` (a parent and three worker
processes) or lone ``serve`` replicas in one shared group, on a Mosquitto and a database of the
test's own; bursts from ``mosquitto_pub -l``; counts read from the database.

Each reading must be stored exactly once: none lost, none doubled, none left waiting in the
session of a process that is gone.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from devices.mqtt.publisher import Publisher
from tests.support.mosquitto import Mosquitto
from tests.support.mqtt_ingest import publisher_options
from tests.support.serve_workers import (
    DEVICE,
    assert_each_once,
    finish,
    publish,
    reading_line,
    service_environment,
    serving,
    start_burst,
    stored,
    wait_gone,
    wait_stored,
)
from tests.support.service import free_port
from tests.support.tcpproxy import TcpProxy
from tests.support.waiting import wait_until


def topic(prefix: str) -> str:
    return f"{prefix}/{DEVICE}/readings"


def test_sigkill_one_of_three_workers_mid_burst_loses_and_doubles_nothing(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    n = 5000
    env = service_environment(db_url, broker.url, topic_prefix, tmp_path)
    with serving(env, tmp_path / "serve.log", workers=3) as service:
        pids = service.worker_pids()
        assert len(pids) == 3
        burst = start_burst(broker.port, topic(topic_prefix), 0, n)
        wait_until(lambda: stored(db_url) >= n // 5, 120, "a fifth of the burst stored")
        victim = pids[1]
        os.kill(victim, signal.SIGKILL)
        wait_gone(victim)
        assert stored(db_url) < n, "the kill must land in the middle of the burst"
        # One listening socket, one accept queue: the port answers while a worker is down.
        assert {answer(service.port) for _ in range(10)} == {200}
        # The parent starts it again under the same replica: its session (with the messages it
        # had not acknowledged, and its share queued meanwhile) is still there.
        service.wait_subscribed(4)
        finish(burst)
        wait_stored(db_url, n)
        log = service.log_text()
    assert_each_once(db_url, DEVICE, range(n))
    assert "worker 1 killed by SIGKILL: starting it again" in log
    assert "session present: True" in log
    assert len(set(service_pids_after(log))) == 4


def answer(port: int) -> int:
    """The status of GET /healthz on a new connection (the kernel hands it to one worker)."""
    with httpx.Client(timeout=10) as client:
        return client.get(f"http://127.0.0.1:{port}/healthz").status_code


def service_pids_after(log: str) -> list[str]:
    """The pids of the workers started, from the parent's log lines."""
    return [line.rsplit("pid ", 1)[1].rstrip(")") for line in log.splitlines() if "started (pid" in line]


def test_sigterm_one_of_three_for_good_then_a_burst_all_stored(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    # Each of the three would get a third of a burst in the group; a few thousand show as well as
    # tens of thousands that none waits in the session of the one that left.
    n = 5000
    env = service_environment(db_url, broker.url, topic_prefix, tmp_path)
    with serving(env, tmp_path / "serve.log", workers=3) as service:
        pids = service.worker_pids()
        os.kill(pids[2], signal.SIGTERM)  # one worker leaves for good
        wait_gone(pids[2])
        wait_until(
            lambda: "worker 2 stopped cleanly on its own signal: not started again" in service.log_text(),
            30,
            "the parent to let worker 2 go",
        )
        assert "left the shared group" in service.log_text()
        publish(broker.port, topic(topic_prefix), 0, n)
        wait_stored(db_url, n)  # nothing waits in the session of the worker that left
        assert len(service.worker_pids()) == 2
    assert_each_once(db_url, DEVICE, range(n))


def test_sigterm_one_of_three_mid_burst_hands_its_share_back(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """Leaving mid-burst: what the worker had received is stored and acknowledged before its
    session ends (a message unacknowledged in an ended session would be gone)."""
    n = 5000
    env = service_environment(db_url, broker.url, topic_prefix, tmp_path)
    with serving(env, tmp_path / "serve.log", workers=3) as service:
        pids = service.worker_pids()
        burst = start_burst(broker.port, topic(topic_prefix), 0, n)
        wait_until(lambda: stored(db_url) >= n // 5, 120, "a fifth of the burst stored")
        os.kill(pids[0], signal.SIGTERM)
        assert stored(db_url) < n, "the stop must land in the middle of the burst"
        wait_gone(pids[0])  # it first stores what the broker had queued for it
        finish(burst)
        wait_stored(db_url, n)
        assert "left the shared group" in service.log_text()
    assert_each_once(db_url, DEVICE, range(n))


def test_three_replicas_stopped_and_two_new_started_strand_nothing(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """Lone ``serve`` processes (one per replica, as on separate machines) in one group: all three
    stop (two leave, the last keeps its session), readings arrive while none runs, two new
    replicas under other names start; one of them adopts the kept session."""
    before, during, after = 1000, 2000, 2000
    base = service_environment(db_url, broker.url, topic_prefix, tmp_path, RPM_MQTT_GROUP_HEARTBEAT_S="1")
    with ExitStack() as old:
        for name in ("a", "b", "c"):
            env = {**base, "RPM_REPLICA": name, "RPM_HTTP_PORT": str(free_port())}
            old.enter_context(serving(env, tmp_path / f"serve-{name}.log"))
        publish(broker.port, topic(topic_prefix), 0, before)
        wait_stored(db_url, before)
    logs = "".join((tmp_path / f"serve-{name}.log").read_text() for name in ("a", "b", "c"))
    assert logs.count("left the shared group") == 2 and logs.count("is the last member") == 1
    publish(broker.port, topic(topic_prefix), before, during)  # none runs: the kept session holds them
    with ExitStack() as new:
        for name in ("d", "e"):
            env = {**base, "RPM_REPLICA": name, "RPM_HTTP_PORT": str(free_port())}
            new.enter_context(serving(env, tmp_path / f"serve-{name}.log"))
        publish(broker.port, topic(topic_prefix), before + during, after)
        wait_stored(db_url, before + during + after)
        new_logs = [tmp_path / f"serve-{name}.log" for name in ("d", "e")]
        wait_until(
            lambda: any("stored what waited for" in log.read_text() for log in new_logs),
            60,
            "the kept session to be adopted and ended",
        )
    assert_each_once(db_url, DEVICE, range(before + during + after))


def test_a_killed_replica_that_never_returns_is_adopted(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    """SIGKILL leaves a session that keeps getting its share; once not seen for
    RPM_MQTT_ADOPT_AFTER_S, another member takes it over, stores its backlog and ends it."""
    n = 3000
    base = service_environment(
        db_url, broker.url, topic_prefix, tmp_path,
        RPM_MQTT_GROUP_HEARTBEAT_S="1", RPM_MQTT_ADOPT_AFTER_S="5",
    )  # fmt: skip
    with ExitStack() as stack:
        services = {}
        for name in ("a", "b", "c"):
            env = {**base, "RPM_REPLICA": name, "RPM_HTTP_PORT": str(free_port())}
            services[name] = stack.enter_context(serving(env, tmp_path / f"serve-{name}.log"))
        assert services["c"].signal(signal.SIGKILL) == -signal.SIGKILL
        publish(broker.port, topic(topic_prefix), 0, n)  # a third waits in c's session
        wait_stored(db_url, n, timeout_s=120)
        adopted = f"stored what waited for w-{base['RPM_MQTT_SHARED_GROUP']}-c"
        wait_until(
            lambda: any(adopted in services[name].log_text() for name in ("a", "b")),
            60,
            "c's session to be adopted and ended",
        )
    assert_each_once(db_url, DEVICE, range(n))


def test_database_cut_for_10_s_while_three_workers_ingest_loses_nothing(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    n = 5000
    target = psycopg.conninfo.conninfo_to_dict(db_url)
    host, port = str(target.get("host", "127.0.0.1")), str(target.get("port", "5432"))
    with TcpProxy(host, int(port)) as proxy:
        proxied = db_url.replace(f":{port}/", f":{proxy.port}/", 1)
        env = service_environment(proxied, broker.url, topic_prefix, tmp_path)
        with serving(env, tmp_path / "serve.log", workers=3) as service:
            burst = start_burst(broker.port, topic(topic_prefix), 0, n)
            wait_until(lambda: stored(db_url) >= n // 10, 120, "a tenth of the burst stored")
            proxy.cut()
            at_cut = stored(db_url)
            finish(burst)  # the broker takes the rest meanwhile and keeps it for the sessions
            time.sleep(10)
            assert stored(db_url) - at_cut < n, "nothing can be stored while the database is cut"
            proxy.restore()
            wait_stored(db_url, n)
            log = service.log_text()
    assert_each_once(db_url, DEVICE, range(n))
    assert at_cut < n, "the cut must land in the middle of the burst"
    assert "storage unavailable" in log


def test_broker_restart_while_three_workers_ingest_loses_nothing(
    db_url: str, patient: str, topic_prefix: str, broker: Mosquitto, tmp_path: Path
) -> None:
    n = 5000
    env = service_environment(db_url, broker.url, topic_prefix, tmp_path)
    with serving(env, tmp_path / "serve.log", workers=3) as service:
        # paho keeps every unacknowledged QoS 1 message and sends it again after a reconnect
        with Publisher(publisher_options(broker.url, client_id="restart-pub"), max_pending=500) as pub:
            for i in range(n // 2):
                pub.publish(topic(topic_prefix), reading_line(i).encode(), timeout_s=120)
            # Mosquitto (2.0.11) does not restore *shared* subscriptions from its persistence
            # file: until the workers have subscribed again, it discards what is published to
            # the group's topics (docs/scaling.md, "Broker restarts"), a publish the publisher
            # sends again after the restart included. So the broker holds every reading of the
            # first half before it restarts: what this test proves is that nothing the broker
            # accepted for the group, nor anything in flight to the workers, is lost.
            assert pub.flush(120)
            wait_until(lambda: stored(db_url) >= n // 10, 120, "a tenth stored")
            broker.restart()  # SIGTERM: Mosquitto saves sessions and queues, then starts again
            wait_until(
                lambda: service.log_text().count("MQTT subscribed to") >= 6, 60, "3 workers subscribed again"
            )
            for i in range(n // 2, n):
                pub.publish(topic(topic_prefix), reading_line(i).encode(), timeout_s=120)
            assert pub.flush(120)
        wait_stored(db_url, n)
        wait_until(lambda: service.log_text().count("session present: True") >= 3, 60, "3 sessions back")
    assert_each_once(db_url, DEVICE, range(n))
