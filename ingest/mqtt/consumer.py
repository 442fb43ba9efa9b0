"""The MQTT consumer component: session -> inbox -> writer, wired from settings.

In a shared group (``RPM_MQTT_SHARED_GROUP``) the consumer is a member of the group
(:mod:`ingest.mqtt.group`): a clean stop leaves the group with :meth:`MqttConsumer.leave` (unsubscribe,
store and acknowledge everything the broker had already sent, end the session) so the broker stops
keeping a share of new readings for a member that is not coming back (docs/scaling.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time

from devices.mqtt.options import BrokerOptions
from ingest.components import Component
from ingest.mqtt.config import consumer_client_id, options_from_settings
from ingest.mqtt.delivery import Delivery
from ingest.mqtt.group import GroupMember
from ingest.mqtt.inbox import Inbox
from ingest.mqtt.membership import Orphan
from ingest.mqtt.session import ConsumerSession
from ingest.mqtt.storage import BatchStore
from ingest.mqtt.topics import subscription
from ingest.mqtt.writer import BatchPolicy, BatchWriter
from ingest.services import Services

logger = logging.getLogger(__name__)

#: Leaving: the broker is done sending once nothing arrived for this long with nothing unacked.
LEAVE_QUIET_S = 0.5


class MqttConsumer:
    def __init__(
        self,
        services: Services,
        options: BrokerOptions,
        *,
        topic_filter: str | None = None,
        adopting: bool = False,
    ) -> None:
        """``adopting``: take over the session another member left behind (``options`` carry its
        client id, ``topic_filter`` its subscription), to store what waited in it and leave."""
        s = services.settings
        self.services = services
        self.options = options
        # Room for the whole in-flight window, so a conforming broker never makes the callback
        # wait; with MQTT 3.1.1 the broker's max_inflight_messages is the window.
        self.inbox: Inbox[Delivery] = Inbox(
            max_items=max(options.receive_maximum, s.batch_max_messages),
            max_bytes=s.mqtt_buffer_bytes,
        )
        self.session = ConsumerSession(
            options,
            topic_filter=topic_filter or subscription(s.mqtt_topic_prefix, s.mqtt_shared_group),
            prefix=s.mqtt_topic_prefix,
            sink=self._hand_over,
            metrics=services.metrics,
            subscribe=not adopting,
        )
        # MQTT 3.1.1 does not say the broker's window (max_inflight_messages): batches then
        # close on size, time or an idle pause only
        window = options.receive_maximum if options.protocol == "5" else None
        self.writer = BatchWriter(
            inbox=self.inbox,
            store=BatchStore(services),
            acker=self.session,
            metrics=services.metrics,
            policy=BatchPolicy(
                max_messages=s.batch_max_messages,
                max_wait_s=s.batch_max_ms / 1000,
                window=window,
                max_bytes=s.batch_max_bytes,
                retry_max_s=s.mqtt_retry_max_s,
                lanes=s.mqtt_writers,
            ),
        )
        self._stop_grace_s = s.mqtt_stop_grace_s
        if not adopting:
            services.metrics.mqtt_inflight.set_function(lambda: self.writer.unacked)

    @property
    def client_id(self) -> str:
        return self.options.client_id

    @property
    def topic_filter(self) -> str:
        return self.session.topic_filter

    @property
    def connected(self) -> bool:
        return self.session.connected

    @property
    def taken_over(self) -> bool:
        return self.session.taken_over

    def adopter(self, orphan: Orphan) -> MqttConsumer:
        """A consumer for the session ``orphan`` left behind (same broker, its client id)."""
        options = dataclasses.replace(self.options, client_id=orphan.client_id)
        return MqttConsumer(self.services, options, topic_filter=orphan.topic_filter, adopting=True)

    def _hand_over(self, delivery: Delivery) -> bool:
        return self.inbox.put(delivery, delivery.size)

    def start(self) -> None:
        self.writer.start()
        self.session.start()

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, leave the rest unacknowledged (the session
        keeps it, with the subscription), disconnect."""
        self.writer.stop(self._stop_grace_s)
        left = len(self.inbox.drain())
        if left:
            logger.info("%d received messages left unacknowledged for redelivery", left)
        self.session.stop()

    def leave(self) -> bool:
        """Hand this member's share of the group back and end the session; False if it could not
        (then call :meth:`stop`: the session is kept, with whatever it holds).

        After the unsubscribe the broker still sends what it had queued for this session; that
        is stored and acknowledged for as long as it keeps coming: the stop gives up only when
        nothing arrived or was acknowledged for ``RPM_MQTT_STOP_GRACE_S``.
        """
        grace = max(self._stop_grace_s, 1.0)
        if not self.session.unsubscribe(timeout_s=grace):
            logger.warning("MQTT unsubscribe not confirmed: keeping the session for this client id")
            return False
        while not self._drained():
            if self.session.taken_over:
                logger.warning("MQTT session %s was taken over: not leaving it", self.options.client_id)
                return False
            if self.session.quiet_s() > grace:
                logger.warning(
                    "MQTT consumer made no progress for %.0f s while leaving: keeping the session"
                    " (%d messages wait in it for client id %s)",
                    grace, self.writer.unacked, self.options.client_id,
                )
                return False
            time.sleep(0.05)
        self.writer.stop(self._stop_grace_s)
        if self.inbox.drain():  # something slipped in after the check: keep it in the session
            self.session.stop()
            return True
        self.session.stop(end_session=True)
        logger.info("MQTT consumer %s left the shared group", self.options.client_id)
        return True

    def _drained(self) -> bool:
        return (
            self.session.connected  # acknowledgements go out on this connection
            and self.writer.unacked == 0
            and self.session.quiet_s() >= LEAVE_QUIET_S
            and self.writer.status()[0]
        )

    def readiness(self) -> tuple[bool, str]:
        ok, detail = self.session.status()
        if not ok:
            return ok, detail
        return self.writer.status()


def mqtt_component(services: Services) -> Component:
    """The MQTT consumer, when enabled and a broker URL is known (external or embedded)."""
    s = services.settings
    if not s.mqtt_enabled:
        return Component(name="mqtt consumer (disabled)")
    consumer = MqttConsumer(services, options_from_settings(s, client_id=consumer_client_id(s)))
    services.readiness["mqtt"] = consumer.readiness
    if s.mqtt_shared_group is None or not s.mqtt_leave_on_stop:
        return Component(
            name="mqtt consumer", start=consumer.start, stop=consumer.stop, extras={"mqtt": consumer}
        )
    member = GroupMember(
        services,
        consumer,
        group=s.mqtt_shared_group,
        heartbeat_s=s.mqtt_group_heartbeat_s,
        adopt_after_s=s.mqtt_adopt_after_s,
        adopter=consumer.adopter,
    )
    return Component(
        name="mqtt consumer",
        start=member.start,
        stop=member.stop,
        extras={"mqtt": consumer, "mqtt_group": member},
    )
