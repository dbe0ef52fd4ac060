"""No password, and no full DSN, in any repr, str, log line, exception or report."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.engine import URL

import dbnb
from dbnb.errors import mask_secrets

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
        f"mysql://root:{SECRET}@localhost/x",
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
