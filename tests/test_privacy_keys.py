"""Master keys: formats, development generation, production refusal, a key ring that follows its file."""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import uuid

import pytest
import sqlalchemy as sa

from referral_api import create_app, privacy
from referral_api.config import ConfigError, Settings
from referral_api.privacy.keys import (
    KeyRing,
    UnknownMasterKey,
    parse_master_keys,
    read_key_file,
    write_key_file,
)
from referral_api.privacy.keystore import unwrap, wrap


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


def test_env_key_ring_first_entry_is_active():
    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    urlsafe = base64.urlsafe_b64encode(k2).decode().rstrip("=")
    active, keys = parse_master_keys(f"new:{_b64(k1)}, old:{urlsafe}")
    assert active == "new" and keys == {"new": k1, "old": k2}


@pytest.mark.parametrize("raw", ["", "justbase64", "k1:" + _b64(b"short"), "k 1:" + _b64(bytes(32)),
                                 f"a:{_b64(bytes(32))},a:{_b64(bytes(32))}", "k1:not*base64"])
def test_bad_master_key_names_the_variable(raw):
    with pytest.raises(ConfigError, match="REFERRAL_API_MASTER_KEY"):
        parse_master_keys(raw)


def test_key_file_is_written_0600_and_read_back(tmp_path):
    path = tmp_path / "ring.json"
    write_key_file(path, "k2", {"k1": bytes(32), "k2": b"\x01" * 32})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == ("k2", {"k1": bytes(32), "k2": b"\x01" * 32})
    path.write_text(json.dumps({"active": "k3", "keys": {"k1": _b64(bytes(32))}}))
    with pytest.raises(ConfigError, match="k3"):
        read_key_file(path)


def test_keys_rotate_keeps_the_key_file_mode_and_gives_it_back_to_its_owner(tmp_path, monkeypatch):
    """docs/deploy.md: the key file is owned by the service user; `keys rotate` run as root must not
    replace it by a root-owned 0600 file the service can no longer read."""
    path = tmp_path / "ring.json"
    write_key_file(path, "k1", {"k1": bytes(32)})
    path.chmod(0o640)
    service = path.stat()
    owners = []
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(os, "fchown", lambda fd, uid, gid: owners.append((uid, gid)))
    KeyRing.from_file(path).add_active("k2", b"\x02" * 32)
    assert owners == [(service.st_uid, service.st_gid)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and read_key_file(path)[0] == "k2"
    assert [p.name for p in tmp_path.iterdir()] == ["ring.json"]  # no temporary file left


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to hand the key file to another user")
def test_keys_rotate_as_root_leaves_the_key_file_to_the_service_user(tmp_path):
    path = tmp_path / "ring.json"
    write_key_file(path, "k1", {"k1": bytes(32)})
    os.chown(path, 65534, 65534)  # nobody: stands for the referral-api user
    KeyRing.from_file(path).add_active("k2", b"\x02" * 32)  # `referral-api keys rotate`, as root
    st = path.stat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (65534, 65534, 0o600)


def test_a_running_service_sees_the_key_rotate_added(tmp_path):
    path = tmp_path / "ring.json"
    write_key_file(path, "k1", {"k1": bytes(32)})
    serving, operator = KeyRing.from_file(path), KeyRing.from_file(path)
    operator.add_active("k2", b"\x02" * 32)
    assert serving.key("k2") == b"\x02" * 32
    assert serving.active_id == "k2"
    with pytest.raises(UnknownMasterKey):
        serving.key("k9")


def test_a_data_key_wrapped_just_after_keys_rotate_stays_readable(tmp_path):
    """The serving key ring has not re-read the file when `keys rotate` (another process) activates a
    new key: the first data key wrapped afterwards is sealed and labelled with one and the same key."""
    path = tmp_path / "master_keys.json"
    write_key_file(path, "k1", {"k1": b"\x01" * 32})
    serving = KeyRing.from_file(path)
    KeyRing.from_file(path).add_active("k2", b"\x02" * 32)  # `referral-api keys rotate`, its own process

    data_key_id, raw = uuid.uuid4(), secrets.token_bytes(32)
    wrapped, kid = wrap(serving, data_key_id, raw)
    assert kid == "k2" and serving.active() == ("k2", b"\x02" * 32)
    reader = KeyRing.from_file(path)  # any process, later
    assert unwrap(reader, data_key_id, wrapped, kid) == raw


def test_development_start_generates_keys_0600_and_says_so(tmp_path, capsys):
    app = create_app({"instance_path": str(tmp_path), "database_url": f"sqlite:///{tmp_path}/x.sqlite3"})
    err = capsys.readouterr().err
    assert "generated a master key ring" in err and "REFERRAL_API_INDEX_KEY" in err
    for name in ("master_keys.json", "index.key", "audit_signing.key"):
        assert stat.S_IMODE((tmp_path / "keys" / name).stat().st_mode) == 0o600
    first = app.extensions[privacy.EXTENSION]
    again = create_app({"instance_path": str(tmp_path), "database_url": f"sqlite:///{tmp_path}/x.sqlite3"})
    assert "generated" not in capsys.readouterr().err  # the second start reuses them
    second = again.extensions[privacy.EXTENSION]
    assert (first.keyring.keys, first.index_key) == (second.keyring.keys, second.index_key)


PROD = {"REFERRAL_API_ENV": "production", "DATABASE_URL": "postgresql://db/x",
        "REFERRAL_API_ISSUER": "https://api.mgec.mn"}
KEYS = {"REFERRAL_API_MASTER_KEY": f"mk1:{_b64(bytes(32))}", "REFERRAL_API_INDEX_KEY": _b64(b"\x03" * 32)}


@pytest.mark.parametrize(
    ("drop", "variable"),
    [("REFERRAL_API_MASTER_KEY", "REFERRAL_API_MASTER_KEY"),
     ("REFERRAL_API_INDEX_KEY", "REFERRAL_API_INDEX_KEY")],
)
def test_production_without_keys_refuses_to_start(drop, variable):
    env = {**PROD, **KEYS}
    del env[drop]
    with pytest.raises(ConfigError, match=variable):
        Settings.from_env(env)


def test_production_with_keys_generates_nothing(tmp_path, capsys):
    settings = Settings.from_env({**PROD, **KEYS, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                                  "REFERRAL_API_INSTANCE_PATH": str(tmp_path)})
    app = create_app(settings)
    assert not (tmp_path / "keys").exists() and "generated" not in capsys.readouterr().err
    loaded = app.extensions[privacy.EXTENSION]
    assert loaded.keyring.active_id == "mk1" and loaded.audit_signing_key is None


def test_production_with_a_malformed_key_refuses_to_start(tmp_path):
    settings = Settings.from_env({**PROD, **KEYS, "REFERRAL_API_INDEX_KEY": "short",
                                  "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                                  "DOCUMENTS_PATH": str(tmp_path / "documents")})
    with pytest.raises(ConfigError, match="REFERRAL_API_INDEX_KEY"):
        create_app(settings)


def test_keys_init_creates_the_separate_key_store(tmp_path):
    from referral_api.cli import cli

    app = create_app({"instance_path": str(tmp_path), "database_url": f"sqlite:///{tmp_path}/main.sqlite3",
                      "keystore_url": f"sqlite:///{tmp_path}/keys.sqlite3"})
    result = app.test_cli_runner().invoke(cli, ["keys", "init"])
    assert result.exit_code == 0, result.output
    engine = sa.create_engine(f"sqlite:///{tmp_path}/keys.sqlite3")
    assert sa.inspect(engine).get_table_names() == ["data_keys"]
    engine.dispose()
    without = create_app({"instance_path": str(tmp_path), "database_url": f"sqlite:///{tmp_path}/m.sqlite3"})
    refused = without.test_cli_runner().invoke(cli, ["keys", "init"])
    assert refused.exit_code == 1 and "KEYSTORE_URL is not set" in refused.output


def test_production_without_a_signing_key_signs_no_checkpoint(tmp_path):
    from referral_api.cli import cli

    settings = Settings.from_env({**PROD, **KEYS, "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
                                  "REFERRAL_API_INSTANCE_PATH": str(tmp_path)})
    result = create_app(settings).test_cli_runner().invoke(cli, ["audit", "checkpoint"])
    assert result.exit_code == 1 and "REFERRAL_API_AUDIT_SIGNING_KEY" in result.output


def test_production_refuses_a_key_file_others_can_read(tmp_path):
    path = tmp_path / "ring.json"
    write_key_file(path, "k1", {"k1": bytes(32)})
    env = {**PROD, "REFERRAL_API_INDEX_KEY": KEYS["REFERRAL_API_INDEX_KEY"],
           "REFERRAL_API_MASTER_KEY_FILE": str(path), "DATABASE_URL": f"sqlite:///{tmp_path}/x.sqlite3",
           "DOCUMENTS_PATH": str(tmp_path / "documents")}
    assert create_app(Settings.from_env(env)).extensions[privacy.EXTENSION].keyring.active_id == "k1"
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        create_app(Settings.from_env(env))
