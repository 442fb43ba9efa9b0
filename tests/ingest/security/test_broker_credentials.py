"""Device credentials on a real Mosquitto with password_file and acl_file: a device publishes only
to its own readings topic, and the service dead-letters what the topic does not vouch for."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import psycopg
import pytest
from click.testing import CliRunner
from paho.mqtt.enums import CallbackAPIVersion

from ingest.cli import cli
from ingest.security import mosquitto as creds
from ingest.settings import Settings
from ingest.store import roster
from tests.ingest.security.tenants import NOW, iso
from tests.support.mosquitto import Mosquitto
from tests.support.service import running_service
from tests.support.waiting import wait_until

SERVICE_PASSWORD = "service-password-0123456789"
NOT_AUTHORIZED = 135  # MQTT 5 reason code 0x87
BAD_CREDENTIALS = 134  # MQTT 5 CONNACK 0x86 "Bad user name or password"
ACCEPTED = frozenset({0, 16})  # PUBACK "success" / "no matching subscribers"


@dataclass
class Broker:
    mosquitto: Mosquitto
    files: creds.BrokerFiles
    prefix: str
    env: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str, stdin: str | None = None) -> Any:
        result = CliRunner().invoke(cli, list(args), input=stdin, env=self.env, catch_exceptions=False)
        return result

    def provision(self, device_id: str, *extra: str) -> str:
        result = self.cli("devices", "provision", device_id, *extra)
        assert result.exit_code == 0, result.output
        answer = json.loads(result.stdout.splitlines()[0])
        password: str = answer["password"]
        return password

    def reload(self) -> None:
        assert self.mosquitto.process is not None
        self.mosquitto.process.send_signal(signal.SIGHUP)

    @property
    def port(self) -> int:
        return self.mosquitto.port


@pytest.fixture
def broker(tmp_path: Path, topic_prefix: str) -> Iterator[Broker]:
    files = creds.BrokerFiles(tmp_path / "auth" / "passwd", tmp_path / "auth" / "acl")
    env = {
        "RPM_MQTT_PASSWORD_FILE": str(files.password_file),
        "RPM_MQTT_ACL_FILE": str(files.acl_file),
        "RPM_MQTT_TOPIC_PREFIX": topic_prefix,
        "RPM_MQTT_URL": f"mqtt://rpm-service:{SERVICE_PASSWORD}@127.0.0.1:1",
    }
    b = Broker(Mosquitto(tmp_path / "broker"), files, topic_prefix, env)
    result = b.cli("devices", "provision-service")
    assert result.exit_code == 0, result.output
    stay_root = "user root\n" if os.geteuid() == 0 else ""  # read the test's private files
    b.mosquitto.listener = (
        f"{stay_root}listener {b.port} 127.0.0.1\nallow_anonymous false\n"
        f"password_file {files.password_file}\nacl_file {files.acl_file}\n"
    )
    with b.mosquitto:
        yield b


class Client:
    """A paho MQTT 5 client that records the broker's answers."""

    def __init__(self, port: int, username: str | None, password: str | None, name: str) -> None:
        self.port = port
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=paho.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.connack: int | None = None
        self.connected = threading.Event()
        self.acks: dict[int, int] = {}
        self.acked = threading.Condition()
        self.messages: list[tuple[str, bytes]] = []
        self.subscribed = threading.Event()
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_message = lambda c, u, m: self.messages.append((m.topic, m.payload))
        self.client.on_subscribe = lambda *a: self.subscribed.set()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        self.connack = reason.value
        self.connected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self.acked:
            self.acks[mid] = reason.value
            self.acked.notify_all()

    def __enter__(self) -> Client:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(10), "no CONNACK"
        return self

    def __exit__(self, *_: object) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def publish(self, topic: str, payload: bytes) -> int:
        """Publish at QoS 1; the PUBACK reason code (0 or 16 = accepted, 135 = not authorised)."""
        info = self.client.publish(topic, payload, qos=1)
        with self.acked:
            assert self.acked.wait_for(lambda: info.mid in self.acks, 10), "no PUBACK"
            return self.acks[info.mid]

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(10)


def topic(prefix: str, device_id: str) -> str:
    return f"{prefix}/{device_id}/readings"


def test_a_device_publishes_only_to_its_own_topic(broker: Broker) -> None:
    a_password = broker.provision("CUFF-A")
    broker.provision("CUFF-B")
    broker.reload()  # the broker was started before these two existed
    with (
        Client(broker.port, "rpm-service", SERVICE_PASSWORD, "svc") as service,
        Client(broker.port, "rpm-service", SERVICE_PASSWORD, "svc-shared") as shared,
    ):
        assert service.connack == 0
        service.subscribe(f"{broker.prefix}/+/readings")
        shared.subscribe(f"$share/ingest/{broker.prefix}/+/readings")
        with Client(broker.port, "CUFF-A", a_password, "cuff-a") as device:
            assert device.connack == 0
            assert device.publish(topic(broker.prefix, "CUFF-A"), b"own") in ACCEPTED
            assert device.publish(topic(broker.prefix, "CUFF-B"), b"forged") == NOT_AUTHORIZED
            assert device.publish(f"{broker.prefix}/CUFF-A/other", b"x") == NOT_AUTHORIZED
            # the broker answers in order: once this is acknowledged, everything before it was routed
            assert device.publish(topic(broker.prefix, "CUFF-A"), b"own-2") in ACCEPTED
        # devices cannot read each other (or anything) either
        with Client(broker.port, "CUFF-A", a_password, "cuff-a-sub") as snoop:
            snoop.subscribe(f"{broker.prefix}/+/readings")
            with Client(broker.port, "CUFF-A", a_password, "cuff-a-2") as device:
                assert device.publish(topic(broker.prefix, "CUFF-A"), b"own-3") in ACCEPTED
            # delivery to subscribers is asynchronous: wait for the last accepted message
            for consumer in (service, shared):
                wait_until(lambda c=consumer: len(c.messages) >= 3, 10, "three messages")  # type: ignore[misc]
                assert [payload for _, payload in consumer.messages] == [b"own", b"own-2", b"own-3"]
        assert snoop.messages == []


def test_wrong_unknown_anonymous_and_revoked_users_cannot_connect(broker: Broker) -> None:
    password = broker.provision("SCALE-1")
    broker.reload()
    with Client(broker.port, "SCALE-1", password, "ok") as ok:
        assert ok.connack == 0
    for username, secret in (("SCALE-1", password + "x"), ("NOBODY", password), (None, None)):
        with Client(broker.port, username, secret, "bad") as bad:
            assert bad.connack in (BAD_CREDENTIALS, NOT_AUTHORIZED), (username, bad.connack)

    result = broker.cli("devices", "revoke", "SCALE-1")
    assert result.exit_code == 0, result.output
    broker.reload()
    with Client(broker.port, "SCALE-1", password, "revoked") as revoked:
        assert revoked.connack in (BAD_CREDENTIALS, NOT_AUTHORIZED)
    assert broker.cli("devices", "revoke", "SCALE-1").exit_code != 0


def test_a_home_gateway_relays_for_its_devices_only(broker: Broker) -> None:
    password = broker.provision("hub-17", "--publishes-for", "F0F1F2F3F4F5", "--publishes-for", "OXI-2")
    broker.reload()
    with Client(broker.port, "hub-17", password, "hub") as hub:
        for device in ("hub-17", "F0F1F2F3F4F5", "OXI-2"):
            assert hub.publish(topic(broker.prefix, device), b"{}") in ACCEPTED
        assert hub.publish(topic(broker.prefix, "SOMEONE-ELSE"), b"{}") == NOT_AUTHORIZED


def test_provisioning_again_replaces_the_password(broker: Broker) -> None:
    first = broker.provision("THERMO-1")
    second = broker.cli(
        "devices", "provision", "THERMO-1", "--password-stdin", stdin="a-chosen-password-42\n"
    )
    assert second.exit_code == 0, second.output
    broker.reload()
    with Client(broker.port, "THERMO-1", first, "old") as old:
        assert old.connack != 0
    with Client(broker.port, "THERMO-1", "a-chosen-password-42", "new") as new:
        assert new.connack == 0
    assert list(creds.AclFile.parse(broker.files.acl_file.read_text()).users) == ["rpm-service", "THERMO-1"]


def test_the_service_dead_letters_what_the_topic_does_not_vouch_for(
    broker: Broker, settings: Settings
) -> None:
    """Through the ACL-enabled broker: the topic's device must be registered and must be the one the
    payload names; anything else is kept in the dead-letter table and acknowledged."""
    device_password = broker.provision("OXI-REG")
    stranger_password = broker.provision("OXI-UNREGISTERED")
    broker.reload()
    service_settings = settings.model_copy(
        update={"mqtt_url": f"mqtt://rpm-service:{SERVICE_PASSWORD}@127.0.0.1:{broker.port}"}
    )
    from ingest.mqtt.consumer import mqtt_component
    from tests.support.mqtt_ingest import wait_ready
    from tests.support.waiting import wait_until

    with running_service(service_settings, factories=[mqtt_component]) as svc:
        wait_ready(svc)
        with svc.services.transaction() as conn:
            patient = roster.create_patient(
                conn, clinic_id="default", mrn="MRN-ACL", display_name="Acl Example", fhir_patient_id=None
            )
            roster.create_device(
                conn,
                device_id="OXI-REG",
                clinic_id="default",
                type_="pulse_oximeter",
                manufacturer=None,
                model=None,
                serial=None,
            )
            roster.assign_device(
                conn, device_id="OXI-REG", patient_id=patient["id"], since=NOW.replace(year=2020)
            )

        def reading(value: int, **extra: str) -> bytes:
            body = {"metric": "spo2", "value": value, "unit": "%", "measured_at": iso(NOW), **extra}
            return json.dumps(body).encode()

        with (
            Client(broker.port, "OXI-REG", device_password, "oxi") as device,
            Client(broker.port, "OXI-UNREGISTERED", stranger_password, "stranger") as stranger,
        ):
            assert device.publish(topic(broker.prefix, "OXI-REG"), reading(97)) in ACCEPTED
            # names another device in the payload: the topic vouches only for OXI-REG
            assert (
                device.publish(topic(broker.prefix, "OXI-REG"), reading(91, device_id="OXI-OTHER"))
                in ACCEPTED
            )
            # a provisioned but unregistered device
            assert stranger.publish(topic(broker.prefix, "OXI-UNREGISTERED"), reading(95)) in ACCEPTED
            # and a forged topic never even reaches the service
            assert stranger.publish(topic(broker.prefix, "OXI-REG"), reading(50)) == NOT_AUTHORIZED

        url = svc.runtime.database_url
        assert url is not None

        def letters() -> list[tuple[str | None, str]]:
            with psycopg.connect(url) as conn:
                return [
                    (r[0], r[1])
                    for r in conn.execute("SELECT device_id, reason FROM dead_letters ORDER BY id")
                ]

        wait_until(lambda: len(letters()) >= 2, what="two dead letters")
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT device_id, value FROM readings").fetchall()
        assert stored == [("OXI-REG", 97.0)]
        reasons = letters()
        assert len(reasons) == 2
        assert any(d == "OXI-REG" and "does not match" in r for d, r in reasons), reasons
        assert any(d == "OXI-UNREGISTERED" and "not registered" in r for d, r in reasons), reasons
