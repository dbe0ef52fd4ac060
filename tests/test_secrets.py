"""No password, and no full DSN, in any repr, str, log line, exception or report."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from sqlalchemy.engine import URL

import dbnb
from dbnb.redaction import mask_secrets

SECRET = "Sup3r-s3cret"


def _leaks(text: str) -> bool:
    return SECRET in text


@pytest.fixture
def secret_db(db: dbnb.Database) -> dbnb.Database:
    # Trust authentication accepts (and ignores) the password, so the Database really works.
    return dbnb.connect(db.url.set(password=SECRET), pool_size=1, application_name="dbnb-secret")


def test_public_objects_hide_the_password(
    secret_db: dbnb.Database, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    texts = [
        repr(secret_db),
        str(secret_db),
        repr(secret_db.url),
        repr(secret_db.settings),
        repr(secret_db.asyncio),
        repr(secret_db.health()),
        repr(secret_db.pool_status()),
        repr(secret_db.info()),
        secret_db.health()._repr_html_(),
        secret_db.info()._repr_html_(),
    ]
    for text in texts:
        assert not _leaks(text), text
    assert not any(_leaks(r.getMessage()) for r in caplog.records)
    secret_db.close()


def test_query_string_passwords_are_hidden_too(db: dbnb.Database) -> None:
    url = db.url.update_query_dict({"password": SECRET})
    other = dbnb.connect(url, pool_size=1, application_name="dbnb-qs-secret")
    try:
        assert other.execute("SELECT 1 AS one")[0].one == 1
        assert not _leaks(repr(other)) and not _leaks(repr(other.settings))
    finally:
        other.close()


@pytest.mark.parametrize(
    "bad",
    [
        f"oracle://root:{SECRET}@localhost/x",
        f"postgresql://root:{SECRET}@localhost:port/x",
        f"postgresql://root@/x?password={SECRET}&host=/nonexistent-dir",
    ],
)
def test_errors_hide_the_password(bad: str) -> None:
    with pytest.raises(dbnb.DbnbError) as info:
        db = dbnb.connect(bad, pool_size=1)
        db.execute("SELECT 1")
    assert not _leaks(str(info.value)), str(info.value)
    assert not _leaks(repr(info.value))


def test_unreachable_server_error_and_health(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    db = dbnb.connect(f"postgresql://app:{SECRET}@/shop?host=/nonexistent-dbnb-dir", pool_size=1)
    with pytest.raises(dbnb.ConnectionFailed) as info:
        db.execute("SELECT 1")
    assert not _leaks(str(info.value)) and "nonexistent-dbnb-dir" in str(info.value)
    assert not _leaks(repr(db.health()))
    assert not any(_leaks(r.getMessage()) for r in caplog.records)
    db.close()


def test_mask_secrets_covers_urls_and_key_values() -> None:
    assert mask_secrets(f"postgresql://u:{SECRET}@h/db") == "postgresql://u:***@h/db"
    assert SECRET not in mask_secrets(f"host=h password={SECRET} user=u")
    assert SECRET not in mask_secrets(f"postgresql://u@h/db?password={SECRET}&x=1")
    assert mask_secrets("no secrets here") == "no secrets here"


def test_url_objects_never_render_the_password() -> None:
    url = URL.create("postgresql", username="u", password=SECRET, host="h", database="d")
    settings = dbnb.Settings.resolve(url, environ={})
    assert not _leaks(repr(settings)) and not _leaks(repr(settings.url))


def _shell() -> Any:
    from IPython import get_ipython
    from IPython.testing.globalipapp import start_ipython

    shell = start_ipython() or get_ipython()
    assert shell is not None
    return shell


# -- malformed URLs of every shape, from every source ------------------------------------------

SHAPES = [
    f"postgres:{SECRET}@db.example.com/app",
    f"postgresql:/app:{SECRET}@db.example.com/app",
    f"postgresql:app:{SECRET}@db.example.com:5432/app",
    f"app:{SECRET}@db.example.com/app",
    f"//app:{SECRET}@db.example.com/app",
    f"postgresql:///app:{SECRET}@db.example.com:notaport/app",
    f"postgresql://app:{SECRET}@db.example.com:99999/app",
    f"mssql://app:{SECRET}@db.example.com/app",
    f"postgresql+nope://app:{SECRET}@db.example.com/app",
    f"  {SECRET}  ",
    f"host=db.example.com password={SECRET}",
]


@pytest.mark.parametrize("bad", SHAPES)
def test_malformed_urls_never_echo_the_text(bad: str) -> None:
    with pytest.raises(dbnb.ConfigError) as by_argument:
        dbnb.connect(bad)
    with pytest.raises(dbnb.ConfigError) as by_env:
        dbnb.Settings.resolve(environ={"DBNB_URL": bad})
    for error in (by_argument.value, by_env.value):
        assert not _leaks(str(error)) and not _leaks(repr(error)), str(error)
        assert re.search(r"\buse\b|expected|write", str(error))  # says what is accepted
    assert "DBNB_URL" in str(by_env.value)


@pytest.mark.parametrize("bad", SHAPES[:4])
def test_malformed_urls_through_the_cli_and_the_magic(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from IPython.core.error import UsageError

    from dbnb.cli import main

    monkeypatch.setenv("DBNB_SECRET_URL", bad)
    # A malformed URL is bad input: exit code 2, as bad usage (dbnb.cli, since 267d348).
    assert main(["--url", "env:DBNB_SECRET_URL", "health"]) == 2
    monkeypatch.setenv("DBNB_URL", bad)
    assert main(["health"]) == 2
    out = capsys.readouterr()
    assert not _leaks(out.out + out.err) and "ConfigError" in out.err
    shell = _shell()
    shell.run_line_magic("load_ext", "dbnb")
    with pytest.raises(UsageError) as info:
        shell.run_line_magic("db", "connect env:DBNB_SECRET_URL")
    assert not _leaks(str(info.value))


# -- %xmode Verbose prints every frame's variables ----------------------------------------------


def _verbose(code: str, monkeypatch: pytest.MonkeyPatch) -> str:
    from IPython.utils.capture import capture_output

    shell = _shell()
    shell.run_line_magic("xmode", "Verbose")
    try:
        with capture_output() as captured:
            shell.run_cell(code)
    finally:
        shell.run_line_magic("xmode", "Context")
    return captured.stdout + captured.stderr


def test_verbose_traceback_of_a_failed_connect_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBNB_SECRET_URL", f"postgresql://app:{SECRET}@127.0.0.1:1/app")
    code = (
        "import os, dbnb\n"
        "broken = dbnb.connect(os.environ['DBNB_SECRET_URL'], pool_size=1)\n"
        "broken.execute('SELECT 1')\n"
    )
    out = _verbose(code, monkeypatch)
    assert "ConnectionFailed" in out and "127.0.0.1" in out
    assert not _leaks(out), out[-3000:]


def test_verbose_traceback_of_a_config_error_shows_no_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DBNB_URL", f"postgres:{SECRET}@db.example.com/app")
    monkeypatch.setenv("DBNB_UNRELATED", "sentinel-value-42")
    out = _verbose("import dbnb\ndbnb.Settings.resolve()\n", monkeypatch)
    assert "ConfigError" in out
    assert not _leaks(out) and "sentinel-value-42" not in out, out[-3000:]


def test_redact_values_hides_quoted_values_in_server_messages(db: dbnb.Database) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS redacted (email text CONSTRAINT uq_redacted UNIQUE)")
    db.execute("INSERT INTO redacted VALUES ('ana@example.com') ON CONFLICT DO NOTHING")
    shared = dbnb.connect(db.url, redact_values=True, pool_size=1, application_name="dbnb-red")
    try:
        with pytest.raises(dbnb.UniqueViolation) as info:
            shared.execute("INSERT INTO redacted VALUES ('ana@example.com')")
        assert "ana@example.com" not in str(info.value)
        assert "ana@example.com" not in (info.value.detail or "")
        assert info.value.constraint == "uq_redacted"
    finally:
        shared.close()
    # Without the setting the user sees which key clashed.
    with pytest.raises(dbnb.UniqueViolation) as plain:
        db.execute("INSERT INTO redacted VALUES ('ana@example.com')")
    assert "ana@example.com" in (plain.value.detail or "")
