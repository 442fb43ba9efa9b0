"""The password and ACL files, checked against the format Mosquitto's own tool writes."""

from __future__ import annotations

import shutil
import stat
import subprocess
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from ingest.cli import cli
from ingest.security import mosquitto as creds

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def files(tmp_path: Path) -> creds.BrokerFiles:
    return creds.BrokerFiles(tmp_path / "passwd", tmp_path / "acl")


def test_hash_format_is_mosquitto_2_pbkdf2_sha512() -> None:
    encoded = creds.hash_password("secret", salt=b"\x00" * 12)
    # the vector mosquitto_passwd 2.0 produces for "secret" with a zero salt, 101 rounds
    assert encoded.startswith("$7$101$AAAAAAAAAAAAAAAA$")
    assert len(encoded.split("$")[4]) == 88  # 64 bytes of SHA-512, base64
    assert creds.verify_password("secret", encoded)
    assert not creds.verify_password("Secret", encoded)
    for broken in ("", "$6$abc", "$7$x$AAAA$BBBB", "$7$101$***$***", encoded[:-4]):
        assert not creds.verify_password("secret", broken)


@pytest.mark.skipif(MOSQUITTO_PASSWD is None, reason="mosquitto_passwd is not installed")
def test_entries_of_mosquitto_passwd_are_read_verified_and_kept(tmp_path: Path) -> None:
    assert MOSQUITTO_PASSWD is not None
    f = files(tmp_path)
    f.password_file.touch()
    subprocess.run([MOSQUITTO_PASSWD, "-b", str(f.password_file), "legacy", "legacy-pass"], check=True)
    creds.set_user(f, "DEV-1", "device-pass-123", creds.device_acl("rpm", "DEV-1"))
    entries = creds.read_passwords(f.password_file)
    assert set(entries) == {"legacy", "DEV-1"}
    assert creds.verify_password("legacy-pass", entries["legacy"])
    assert creds.verify_password("device-pass-123", entries["DEV-1"])
    # and mosquitto_passwd can keep working on the file we wrote
    subprocess.run([MOSQUITTO_PASSWD, "-D", str(f.password_file), "legacy"], check=True)
    assert set(creds.read_passwords(f.password_file)) == {"DEV-1"}


def test_acl_blocks_are_replaced_and_the_head_is_kept(tmp_path: Path) -> None:
    f = files(tmp_path)
    f.acl_file.write_text(
        "# site rules\npattern read $SYS/broker/uptime\n\nuser old\ntopic write rpm/old/readings\n"
    )
    creds.set_user(f, "DEV-1", "pw-123456789012", creds.device_acl("rpm", "DEV-1"))
    creds.set_user(f, "DEV-1", "pw-123456789012", creds.device_acl("rpm", "DEV-1", ["BLE-9"]))
    text = f.acl_file.read_text()
    assert text.startswith("# site rules\npattern read $SYS/broker/uptime\n")
    acl = creds.AclFile.parse(text)
    assert acl.users == {
        "old": ["topic write rpm/old/readings"],
        "DEV-1": ["topic write rpm/DEV-1/readings", "topic write rpm/BLE-9/readings"],
    }
    assert creds.remove_user(f, "old") and not creds.remove_user(f, "old")
    assert list(creds.AclFile.parse(f.acl_file.read_text()).users) == ["DEV-1"]


def test_new_files_are_private_and_existing_modes_are_kept(tmp_path: Path) -> None:
    f = files(tmp_path)
    creds.set_user(f, "a", "pw-123456789012", [])
    assert stat.S_IMODE(f.password_file.stat().st_mode) == 0o600
    f.password_file.chmod(0o640)
    creds.set_user(f, "b", "pw-123456789012", [])
    assert stat.S_IMODE(f.password_file.stat().st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize(
    "hostile",
    [
        "DEV\ntopic readwrite #",  # a new ACL line
        "DEV topic",
        "user:pw",  # would split the password file's line
        "#",
        "+",
        "rpm/DEV",
        "",
        "x" * 65,
        "DÉV",
        "DEV\x00",
    ],
)
def test_hostile_names_are_refused(tmp_path: Path, hostile: str) -> None:
    f = files(tmp_path)
    with pytest.raises(creds.CredentialFileError):
        creds.set_user(f, hostile, "pw-123456789012", [])
    if not creds.DEVICE_ID_RE.fullmatch(hostile):  # "user:pw" is a fine device id, not a fine username
        with pytest.raises(creds.CredentialFileError):
            creds.device_acl("rpm", hostile)
    assert not f.password_file.exists() and not f.acl_file.exists()


def test_a_device_id_with_colons_needs_an_mqtt_username(tmp_path: Path) -> None:
    env = {"RPM_MQTT_PASSWORD_FILE": str(tmp_path / "passwd"), "RPM_MQTT_ACL_FILE": str(tmp_path / "acl")}
    runner = CliRunner()
    refused = runner.invoke(cli, ["devices", "provision", "AA:BB:CC"], env=env)
    assert refused.exit_code == 1 and "--username" in refused.output
    ok = runner.invoke(cli, ["devices", "provision", "AA:BB:CC", "--username", "AABBCC"], env=env)
    assert ok.exit_code == 0, ok.output
    assert creds.AclFile.parse((tmp_path / "acl").read_text()).users["AABBCC"] == [
        "topic write rpm/AA:BB:CC/readings"
    ]


def test_unreadable_files_are_reported_not_overwritten(tmp_path: Path) -> None:
    f = files(tmp_path)
    f.password_file.write_text("no separator here\n")
    with pytest.raises(creds.CredentialFileError, match="passwd:1"):
        creds.set_user(f, "a", "pw-123456789012", [])
    assert f.password_file.read_text() == "no separator here\n"
    f.password_file.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(creds.CredentialFileError):
        creds.read_passwords(f.password_file)


def test_the_command_needs_to_know_where_the_files_are(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["devices", "provision", "DEV-1"], env={"RPM_MQTT_PASSWORD_FILE": "", "RPM_MQTT_ACL_FILE": ""}
    )
    assert result.exit_code == 2 and "RPM_MQTT_PASSWORD_FILE" in result.output
    short = CliRunner().invoke(
        cli,
        [
            "devices",
            "provision",
            "DEV-1",
            "--password-stdin",
            "--password-file",
            str(tmp_path / "p"),
            "--acl-file",
            str(tmp_path / "a"),
        ],
        input="short\n",
    )
    assert short.exit_code == 2 and "12 characters" in short.output


def test_concurrent_provisioning_loses_no_entry(tmp_path: Path) -> None:
    f = files(tmp_path)
    errors: list[BaseException] = []

    def provision(i: int) -> None:
        try:
            creds.set_user(f, f"DEV-{i}", "pw-123456789012", creds.device_acl("rpm", f"DEV-{i}"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=provision, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert set(creds.read_passwords(f.password_file)) == {f"DEV-{i}" for i in range(12)}
    assert len(creds.AclFile.parse(f.acl_file.read_text()).users) == 12
