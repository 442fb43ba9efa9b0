"""The MQTT consumer component: session -> inbox -> writer, wired from settings."""

from __future__ import annotations

import logging

from devices.mqtt.options import BrokerOptions
from ingest.components import Component
from ingest.mqtt.config import options_from_settings
from ingest.mqtt.delivery import Delivery
from ingest.mqtt.inbox import Inbox
from ingest.mqtt.session import ConsumerSession
from ingest.mqtt.storage import BatchStore
from ingest.mqtt.topics import subscription
from ingest.mqtt.writer import BatchPolicy, BatchWriter
from ingest.services import Services

logger = logging.getLogger(__name__)


class MqttConsumer:
    def __init__(self, services: Services, options: BrokerOptions) -> None:
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
            topic_filter=subscription(s.mqtt_topic_prefix, s.mqtt_shared_group),
            prefix=s.mqtt_topic_prefix,
            sink=self._hand_over,
            metrics=services.metrics,
        )
        window = options.receive_maximum if options.protocol == "5" else s.batch_max_messages
        self.writer = BatchWriter(
            inbox=self.inbox,
            store=BatchStore(services),
            acker=self.session,
            metrics=services.metrics,
            policy=BatchPolicy(
                max_messages=s.batch_max_messages,
                max_wait_s=s.batch_max_ms / 1000,
                window=window,
                retry_max_s=s.mqtt_retry_max_s,
            ),
        )
        self._stop_grace_s = s.mqtt_stop_grace_s
        services.metrics.mqtt_inflight.set_function(lambda: self.writer.unacked)

    def _hand_over(self, delivery: Delivery) -> bool:
        return self.inbox.put(delivery, delivery.size)

    def start(self) -> None:
        self.writer.start()
        self.session.start()

    def stop(self) -> None:
        """Finish the batch in hand, acknowledge it, leave the rest unacknowledged, disconnect."""
        self.writer.stop(self._stop_grace_s)
        left = len(self.inbox.drain())
        if left:
            logger.info("%d received messages left unacknowledged for redelivery", left)
        self.session.stop()

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
    consumer = MqttConsumer(services, options_from_settings(s))
    services.readiness["mqtt"] = consumer.readiness
    return Component(
        name="mqtt consumer", start=consumer.start, stop=consumer.stop, extras={"mqtt": consumer}
    )
