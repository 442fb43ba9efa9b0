"""``rpm-ingest fhir keygen|jwks``."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from fhir_export.auth import SigningKey
from ingest.cli import cli


def test_keygen_writes_a_private_key_and_jwks_prints_the_public_half(tmp_path: Path) -> None:
    runner = CliRunner()
    key = tmp_path / "client.pem"
    made = runner.invoke(cli, ["fhir", "keygen", "--alg", "RS384", "--out", str(key)])
    assert made.exit_code == 0, made.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    printed = runner.invoke(cli, ["fhir", "jwks"], env={"RPM_FHIR_PRIVATE_KEY_FILE": str(key)})
    assert printed.exit_code == 0
    jwks = json.loads(printed.output)
    assert jwks == json.loads(made.output) == SigningKey.from_file(key).jwks()
    [jwk] = jwks["keys"]
    assert jwk["alg"] == "RS384" and "d" not in jwk and "p" not in jwk
    again = runner.invoke(cli, ["fhir", "keygen", "--out", str(key)])
    assert again.exit_code == 1 and "not overwriting" in again.output


def test_jwks_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"\x00\xff not a key")
    result = runner.invoke(cli, ["fhir", "jwks", "--key", str(junk)])
    assert result.exit_code == 1 and "cannot read the private key" in result.output
    missing = runner.invoke(cli, ["fhir", "jwks", "--key", str(tmp_path / "none.pem")])
    assert missing.exit_code == 1 and "cannot read the private key file" in missing.output
    unset = runner.invoke(cli, ["fhir", "jwks"], env={"RPM_FHIR_PRIVATE_KEY_FILE": ""})
    assert unset.exit_code == 2
