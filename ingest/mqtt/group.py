"""The consumer as a member of an MQTT shared group: no reading stranded when members come and go.

Mosquitto keeps dispatching a shared group's messages, in turn, to every member that holds a
subscription, online or not; a member away with its session kept accumulates its share until
its client id comes back, and a group with no subscription at all gets nothing: those messages
are dropped. So each member:

- registers in ``mqtt_group_members`` and is seen there every ``RPM_MQTT_GROUP_HEARTBEAT_S``;
- at a clean stop, leaves the group (unsubscribe, store what it received, end its session) while
  another member is alive, and otherwise parks: keeps its session and subscription, so readings
  published while the whole group is down wait in the broker;
- adopts, one at a time, the session of a parked member or of one not seen for
  ``RPM_MQTT_ADOPT_AFTER_S`` (killed, and not started again under its client id): connects under
  that client id without subscribing, stores what waited there, then ends that session.

A member killed and started again under its own client id (``serve --workers`` does that) simply
finds its session again. Two connections under one client id are harmless: the broker keeps the
newer one, redelivers what the older had not acknowledged, and an adopter gives up when the
owner comes back (docs/scaling.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import psycopg
import psycopg_pool

from ingest.background import BackgroundThread
from ingest.mqtt import membership
from ingest.mqtt.membership import Orphan
from ingest.services import Services

logger = logging.getLogger(__name__)

#: How long a member stays "alive" for another's leave decision, in heartbeats.
FRESH_HEARTBEATS = 3
_CONNECT_TIMEOUT_S = 30.0


class Consumer(Protocol):
    """What a member needs of a consumer (:class:`ingest.mqtt.consumer.MqttConsumer`)."""

    @property
    def client_id(self) -> str: ...

    @property
    def topic_filter(self) -> str: ...

    @property
    def connected(self) -> bool: ...

    @property
    def taken_over(self) -> bool: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def leave(self) -> bool: ...


#: Builds the consumer that takes over an orphan's session (its client id, no new subscription).
Adopter = Callable[[Orphan], Consumer]


class GroupMember:
    """Runs ``consumer`` as a member of ``group`` (see the module docstring)."""

    def __init__(
        self,
        services: Services,
        consumer: Consumer,
        *,
        group: str,
        heartbeat_s: float,
        adopt_after_s: float,
        adopter: Adopter,
    ) -> None:
        self.services = services
        self.consumer = consumer
        self.group = group
        self.client_id = consumer.client_id
        self.topic_filter = consumer.topic_filter
        self.heartbeat_s = heartbeat_s
        self.adopt_after_s = adopt_after_s
        self._adopter = adopter
        self._background = BackgroundThread(f"mqtt-group-{group}", self._loop)
        self._adopting: str | None = None
        self._adoption: threading.Thread | None = None

    # --- life cycle
    def start(self) -> None:
        self.consumer.start()
        self._beat()
        self._background.start()

    def stop(self) -> None:
        """Leave the group if another member is alive, else park (keep the session)."""
        self._background.stop()
        adoption = self._adoption
        if adoption is not None:
            adoption.join()  # it ends by itself: drained, taken over, or no progress for the grace
        if self._may_leave():
            if self.consumer.leave():
                return
            self._park()  # could not hand everything back: the session is kept, and recorded
        else:
            logger.info(
                "MQTT consumer %s is the last member of group %s: keeping its session, where"
                " readings wait until a member is back",
                self.client_id,
                self.group,
            )
        self.consumer.stop()

    # --- the loop: heartbeat, then adopt what was left behind
    def _loop(self) -> None:
        while not self._background.stopping.wait(self.heartbeat_s):
            if self._beat() and self._adoption is None:
                self._adopt_one()

    def _beat(self) -> bool:
        try:
            with self.services.transaction() as conn:
                membership.join(
                    conn, client_id=self.client_id, group=self.group, topic_filter=self.topic_filter
                )
                if self._adopting is not None:
                    membership.heartbeat(conn, [self._adopting])
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            logger.warning("MQTT group %s: membership not recorded (%s)", self.group, type(exc).__name__)
            return False
        return True

    def _may_leave(self) -> bool:
        try:
            with self.services.transaction() as conn:
                return membership.may_leave(
                    conn, client_id=self.client_id, group=self.group,
                    fresh_s=self.heartbeat_s * FRESH_HEARTBEATS,
                )  # fmt: skip
        except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
            logger.warning(
                "MQTT group %s: cannot tell whether another member is alive (%s): keeping the session",
                self.group, type(exc).__name__,
            )  # fmt: skip
            return False

    def _park(self) -> None:
        try:
            with self.services.transaction() as conn:
                membership.join(
                    conn, client_id=self.client_id, group=self.group, topic_filter=self.topic_filter
                )
                membership.may_leave(conn, client_id=self.client_id, group=self.group, fresh_s=0)
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            logger.warning(
                "MQTT group %s: could not record the kept session of %s", self.group, self.client_id
            )

    def _adopt_one(self) -> None:
        try:
            with self.services.transaction() as conn:
                orphan = membership.claim_orphan(
                    conn, client_id=self.client_id, group=self.group, stale_s=self.adopt_after_s
                )
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            return
        if orphan is None:
            return
        self._adopting = orphan.client_id
        self._adoption = threading.Thread(target=self._adopt, args=(orphan,), name="mqtt-adopt", daemon=True)
        self._adoption.start()

    def _adopt(self, orphan: Orphan) -> None:
        logger.info("MQTT group %s: adopting the session of %s", self.group, orphan.client_id)
        adopter = self._adopter(orphan)
        ended = False
        try:
            adopter.start()
            if self._wait_connected(adopter):
                ended = adopter.leave()
        finally:
            if not ended:
                adopter.stop()
            self._adopting = None
            self._adoption = None
        if not ended:
            logger.warning("MQTT group %s: the session of %s was not ended; retrying later",
                           self.group, orphan.client_id)  # fmt: skip
            return
        try:
            with self.services.transaction() as conn:
                membership.forget(conn, orphan.client_id)
        except (psycopg.Error, psycopg_pool.PoolTimeout):
            pass  # the row stays: a later adoption finds an empty session and ends it again
        logger.info("MQTT group %s: stored what waited for %s and ended its session",
                    self.group, orphan.client_id)  # fmt: skip

    def _wait_connected(self, adopter: Consumer) -> bool:
        waited = 0.0
        while not adopter.connected:
            if adopter.taken_over or waited >= _CONNECT_TIMEOUT_S:
                return False
            if self._background.stopping.wait(0.05):
                return False
            waited += 0.05
        return True
