"""The entrypoint's settings: what the cloud passes, refused clearly when missing or malformed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy

from tracking_server import settings as names
from tracking_server.entrypoint import server_command
from tracking_server.settings import SettingsError, from_environ, setup_from_environ

RDS_BUNDLE = str(Path(names.__file__).parent / "certs" / "rds-global-bundle.pem")
GOOD = {
    names.AUTH_MODE: "iam",
    names.DB_HOST: "db.internal",
    names.DB_PORT: "5432",
    names.DB_NAME: "mlflow",
    names.DB_USERNAME: "mlflow_server",
    names.DB_PASSWORD: "p@ss:w/rd%?#&=",
    names.DB_MASTER_USERNAME: "mlflow",
    names.DB_MASTER_PASSWORD: "master-p@ss:w/rd",
    names.DB_SSL_ROOT_CERT: RDS_BUNDLE,
    names.ARTIFACTS_DESTINATION: "s3://bucket-1/artifacts",
    names.ALLOWED_HOSTS: "*.execute-api.eu-west-1.amazonaws.com",
    # Both modes keep MLflow's users: iam mode needs the admin and session key too.
    names.ADMIN_USERNAME: "admin",
    names.ADMIN_PASSWORD: "a-long-admin-password",
    names.SECRET_KEY: "k" * 48,
}
BASIC = {
    **GOOD,
    names.AUTH_MODE: "basic",
    names.ADMIN_USERNAME: "admin",
    names.ADMIN_PASSWORD: "a-long-admin-password",
    names.SECRET_KEY: "k" * 48,
}


def test_database_uri_escapes_the_credentials():
    uri = from_environ(GOOD).database.uri()
    url = sqlalchemy.engine.make_url(uri)
    assert url.password == GOOD[names.DB_PASSWORD]
    assert url.username == "mlflow_server" and url.host == "db.internal"
    assert url.database == "mlflow"
    assert from_environ(GOOD).database.uri("mlflow_auth").split("?")[0].endswith("/mlflow_auth")
    master = sqlalchemy.engine.make_url(setup_from_environ(GOOD).uri(master=True))
    assert (master.username, master.password) == ("mlflow", GOOD[names.DB_MASTER_PASSWORD])


def test_every_database_connection_verifies_the_servers_certificate():
    """libpq's sslmode=verify-full: TLS, the certificate chains to the given CA and names the
    host ("Protection Provided in Different Modes", PostgreSQL documentation, libpq SSL)."""
    database = setup_from_environ(GOOD)
    for uri in (database.uri(), database.uri("mlflow_auth"), database.uri(master=True)):
        query = sqlalchemy.engine.make_url(uri).query
        assert query == {"sslmode": "verify-full", "sslrootcert": RDS_BUNDLE}
    for master in (False, True):
        args = database.connect_args(master=master)
        assert (args["sslmode"], args["sslrootcert"]) == ("verify-full", RDS_BUNDLE)


def test_the_ca_bundle_defaults_to_the_images_and_must_be_readable():
    without = {k: v for k, v in GOOD.items() if k != names.DB_SSL_ROOT_CERT}
    if Path(names.RDS_CA_BUNDLE).exists():
        pytest.skip(f"{names.RDS_CA_BUNDLE} exists on this machine")
    with pytest.raises(SettingsError) as raised:
        from_environ(without)
    assert raised.value.problems == [
        f"{names.DB_SSL_ROOT_CERT}={names.RDS_CA_BUNDLE!r}: not a readable file (the CA "
        "certificates that the database's certificate must chain to)"
    ]


def test_defaults_for_the_optional_settings():
    settings = from_environ(GOOD)
    assert settings.port == names.PORT
    assert settings.bind_address == "0.0.0.0"
    assert settings.workers == names.DEFAULT_WORKERS
    assert settings.auth_cache_seconds == 60
    assert "p@ss" not in repr(settings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({names.AUTH_MODE: "oauth"}, f"{names.AUTH_MODE}='oauth': must be one of basic, iam"),
        ({names.DB_HOST: ""}, f"{names.DB_HOST} is missing"),
        ({names.DB_PORT: "54x"}, f"{names.DB_PORT}='54x': must be a whole number from 1 to 65535"),
        ({names.DB_NAME: "1db"}, f"{names.DB_NAME}='1db'"),
        ({names.ARTIFACTS_DESTINATION: "/tmp/x"}, "must be s3://<bucket>[/<prefix>]"),
        ({names.ALLOWED_HOSTS: "good.example,bad host"}, "'bad host' is not a host name"),
        ({names.WORKERS: "0"}, f"{names.WORKERS}='0': must be a whole number from 1 to 64"),
        ({names.BIND_ADDRESS: "everywhere"}, "must be an IPv4 address"),
        ({names.DB_USERNAME: "Server-Role"}, f"{names.DB_USERNAME}='Server-Role': lower-case"),
        ({names.DB_PASSWORD: "short"}, f"{names.DB_PASSWORD}: at least 12 characters"),
    ],
)
def test_malformed_settings_are_refused_by_name_value_and_rule(change, message):
    with pytest.raises(SettingsError) as raised:
        from_environ({**GOOD, **change})
    assert any(message in p for p in raised.value.problems), raised.value.problems


SERVER = {k: v for k, v in GOOD.items() if k not in (names.DB_MASTER_USERNAME,
                                                     names.DB_MASTER_PASSWORD)}  # fmt: skip
SETUP = {k: GOOD[k] for k in (names.DB_HOST, names.DB_PORT, names.DB_NAME, names.DB_USERNAME,
                              names.DB_PASSWORD, names.DB_MASTER_USERNAME,
                              names.DB_MASTER_PASSWORD, names.DB_SSL_ROOT_CERT)}  # fmt: skip


def test_the_server_needs_no_master_user_and_never_keeps_one():
    """The server container gets no master secret (the init container sets the role up)."""
    database = from_environ(SERVER).database
    assert database.username == "mlflow_server"
    assert database.master_username is None and database.master_password is None
    # Passed anyway (an older task definition): not read, so not kept.
    assert from_environ(GOOD).database.master_password is None


def test_the_setup_needs_the_database_settings_and_the_master_user_only():
    database = setup_from_environ(SETUP)
    assert (database.master_username, database.master_password) == (
        "mlflow",
        GOOD[names.DB_MASTER_PASSWORD],
    )
    assert (database.username, database.password) == ("mlflow_server", GOOD[names.DB_PASSWORD])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({names.DB_MASTER_USERNAME: ""}, f"{names.DB_MASTER_USERNAME} is missing: the master user"),
        ({names.DB_MASTER_PASSWORD: ""}, f"{names.DB_MASTER_PASSWORD} is missing"),
        ({names.DB_USERNAME: "mlflow"}, "the server's role must not be the master user"),
        ({names.DB_PASSWORD: "short"}, f"{names.DB_PASSWORD}: at least 12 characters"),
    ],
)
def test_the_setup_refuses_without_the_master_user_by_name(change, message):
    with pytest.raises(SettingsError) as raised:
        setup_from_environ({**SETUP, **change})
    assert any(message in p for p in raised.value.problems), raised.value.problems
    assert not any(GOOD[names.DB_MASTER_PASSWORD] in p for p in raised.value.problems)


def _entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_PLATFORM_")}
    return subprocess.run(
        [sys.executable, "-m", "tracking_server.entrypoint", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_setup_command_refuses_to_start_without_the_master_user_with_exit_code_2():
    master = (names.DB_MASTER_USERNAME, names.DB_MASTER_PASSWORD)
    server_only = {k: v for k, v in SETUP.items() if k not in master}
    result = _entrypoint(names.SETUP_DATABASE, env=server_only)
    assert result.returncode == 2, result.stderr
    assert "refusing to start" in result.stderr
    assert f"{names.DB_MASTER_USERNAME} is missing" in result.stderr
    assert f"{names.DB_MASTER_PASSWORD} is missing" in result.stderr
    # The set-up does not ask for what only the server needs.
    assert names.ADMIN_PASSWORD not in result.stderr and names.AUTH_MODE not in result.stderr


def test_an_unknown_command_is_refused_naming_the_known_ones():
    result = _entrypoint("setup", env={})
    assert result.returncode == 2
    assert f"unknown command 'setup': none (the server) or {names.SETUP_DATABASE}" in (
        result.stderr
    )


def test_basic_mode_needs_its_secrets_and_never_echoes_them():
    env = {**BASIC, names.ADMIN_PASSWORD: "short", names.SECRET_KEY: ""}
    with pytest.raises(SettingsError) as raised:
        from_environ(env)
    problems = raised.value.problems
    assert f"{names.ADMIN_PASSWORD}: at least 12 characters" in problems
    assert any(p.startswith(f"{names.SECRET_KEY} is missing") for p in problems)
    assert not any("short" in p for p in problems)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as raised:
        from_environ({})
    assert len(raised.value.problems) >= 6


def test_entrypoint_refuses_to_start_with_exit_code_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_PLATFORM_")}
    result = subprocess.run(
        [sys.executable, "-m", "tracking_server.entrypoint"],
        env={**env, names.AUTH_MODE: "basic"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    assert f"{names.DB_HOST} is missing" in result.stderr
    assert f"{names.ADMIN_PASSWORD} is missing" in result.stderr


def test_no_secret_reaches_the_server_command_line(tmp_path, monkeypatch):
    """(The auth database is prepared against a real PostgreSQL in the local platform's
    tests; here there is none.)"""
    from tracking_server import entrypoint

    monkeypatch.setattr(entrypoint, "ensure_auth_database", lambda settings: "sqlite:///auth")
    monkeypatch.setattr(entrypoint, "prepare_auth", lambda settings, uri: None)
    for key, value in GOOD.items():
        monkeypatch.setenv(key, value)
    argv, env = server_command(from_environ(GOOD), tmp_path)
    for secret in (names.DB_PASSWORD, names.DB_MASTER_PASSWORD, names.ADMIN_PASSWORD,
                   names.SECRET_KEY):  # fmt: skip
        assert not any(GOOD[secret] in arg for arg in argv)
    assert "--allowed-hosts" in argv
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg2://mlflow_server:")
    assert env["MLFLOW_REGISTRY_STORE_URI"].startswith("postgresql+psycopg2://mlflow_server:")
    assert names.DB_PASSWORD not in env
    # The master credential is for the entrypoint's role set-up only: the server never sees it.
    assert names.DB_MASTER_USERNAME not in env and names.DB_MASTER_PASSWORD not in env
    assert not any("master-p" in value for value in env.values())
