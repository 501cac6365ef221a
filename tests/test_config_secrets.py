"""A secret pasted where it does not belong in the configuration is never repeated.

An administrator puts the API token in `[zendesk] url` (as user-info, as `?api_token=`, or as
the whole value), or the Freshdesk key as `https://KEY:X@...`: the configuration error names
the file (or the variable) and the key, and says what is wrong, without the secret.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest

from connector.cli import main
from connector.errors import ConfigError, masked_setting
from connector.helpdesks.freshdesk import base_url_for as freshdesk_base_url
from connector.helpdesks.zendesk import base_url_for as zendesk_base_url
from connector.http import check_base_url
from connector.logs import MASK
from tests.conftest import MAPPINGS, forget_admin_settings

pytestmark = pytest.mark.reliability

# Shaped as the helpdesks issue them: a Zendesk API token is 40 letters and digits, a
# Freshdesk API key 20, a base64 token may hold + / =. None is registered with the logs.
ZENDESK_TOKEN = "Zq8vT3kLm0Pa7RbX2cYd9NfE4gHj6KsW1uVo5Ii0"
FRESHDESK_KEY = "aB3dE5fG7hJ9kL1mN2pQ"
BASE64_TOKEN = "dG9rZW4+Zm9y/c2xhLWNvbm5lY3Rvcg=="

PASTED = {
    "user-info": f"https://{ZENDESK_TOKEN}@acme.zendesk.com",
    "user-info password": f"https://robot@acme.example:{quote(ZENDESK_TOKEN)}@acme.zendesk.com",
    "email/token user-info": f"https://robot@acme.example/token:{ZENDESK_TOKEN}@acme.zendesk.com",
    "freshdesk key user-info": f"https://{FRESHDESK_KEY}:X@acme.freshdesk.com",
    "query on http": f"http://acme.zendesk.com/?api_token={ZENDESK_TOKEN}",
    "query on https": f"https://acme.zendesk.com/?api_token={ZENDESK_TOKEN}",
    "query without a name": f"https://acme.zendesk.com/api?{BASE64_TOKEN}",
    "fragment": f"https://acme.zendesk.com/#{ZENDESK_TOKEN}",
    "bare token": ZENDESK_TOKEN,
    "bare key": FRESHDESK_KEY,
    "bare base64 token": BASE64_TOKEN,
}
SECRETS = (ZENDESK_TOKEN, FRESHDESK_KEY, BASE64_TOKEN)


def shown_parts(text: str) -> list[str]:
    """The parts of a secret (8 characters or more, as is or URL-encoded) found in `text`."""
    found = []
    for secret in SECRETS:
        for form in {secret, quote(secret, safe="")}:
            found += [form[i : i + 8] for i in range(len(form) - 7) if form[i : i + 8] in text]
    return found


def config_text(helpdesk: str, url: str, state_dir: Path, /, **top: object) -> str:
    values = {
        "helpdesk": helpdesk,
        "mappings": str(MAPPINGS),
        "state_dir": str(state_dir),
        **top,
    }
    lines = [f"{key} = {json.dumps(value)}" for key, value in values.items()]
    return "\n".join([*lines, f"[{helpdesk}]", f"url = {json.dumps(url)}"]) + "\n"


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    forget_admin_settings(monkeypatch)


@pytest.fixture(params=["zendesk", "freshdesk"])
def helpdesk(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# --- through the command line ----------------------------------------------------------------


@pytest.mark.parametrize("url", PASTED.values(), ids=PASTED.keys())
def test_a_secret_pasted_into_the_url_is_not_repeated(
    helpdesk: str, url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(helpdesk, url, tmp_path / "state"), encoding="utf-8")

    for command in (["check"], ["sync", "--once"]):
        status = main([*command, "--config", str(config)])
        out, err = capsys.readouterr()
        assert (status, out) == (2, ""), command
        [line] = err.splitlines()
        assert line.startswith(f"sla-connector: error: {config}: {helpdesk}.url: "), line
        assert shown_parts(err) == [], err
    assert not (tmp_path / "state").exists()  # refused before anything was opened


def test_a_secret_in_a_url_from_the_environment_is_not_repeated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text("zendesk", "https://acme.zendesk.com", tmp_path / "state"))
    monkeypatch.setenv("SLA_CONNECTOR_ZENDESK__URL", PASTED["query on https"])

    assert main(["check", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(
        "sla-connector: error: environment SLA_CONNECTOR_ZENDESK__URL: zendesk.url: "
    )
    assert shown_parts(err) == [], err


@pytest.mark.parametrize(
    ("key", "value"),
    [("helpdesk", ZENDESK_TOKEN), ("poll_interval", FRESHDESK_KEY), ("start", BASE64_TOKEN)],
)
def test_a_secret_pasted_as_another_value_is_not_repeated(
    key: str, value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    text = config_text("zendesk", "https://acme.zendesk.com", tmp_path / "state", **{key: value})
    config.write_text(text, encoding="utf-8")

    assert main(["check", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(f"sla-connector: error: {config}: {key}: expected "), line
    assert MASK in line
    assert shown_parts(err) == [], err


def test_a_plain_mistake_is_still_quoted_as_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.toml"
    url = "http://acme.zendesk.com/helpdesk"
    config.write_text(config_text("zendesk", url, tmp_path / "state"), encoding="utf-8")

    assert main(["check", "--config", str(config)]) == 2
    _, err = capsys.readouterr()
    assert err.endswith(f"got {url!r}\n")


# --- the URL checks of the clients -----------------------------------------------------------


@pytest.mark.parametrize("url", PASTED.values(), ids=PASTED.keys())
def test_the_clients_refuse_a_pasted_secret_without_repeating_it(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_base_url(url, file="config.toml", key="zendesk.url")
    [line] = refused.value.lines()
    assert line.startswith("config.toml: zendesk.url: ")
    assert shown_parts(line) == [], line


@pytest.mark.parametrize(
    "domain",
    [
        PASTED["query on https"].replace("zendesk", "freshdesk"),
        PASTED["freshdesk key user-info"],
        f"{FRESHDESK_KEY}:X",
        f"{BASE64_TOKEN}.freshdesk.com",
    ],
)
def test_freshdesk_base_url_refuses_a_pasted_key_without_repeating_it(domain: str) -> None:
    with pytest.raises(ConfigError) as refused:
        freshdesk_base_url(domain, file="config.toml", key="freshdesk.domain")
    [line] = refused.value.lines()
    assert line.startswith("config.toml: freshdesk.domain: ")
    assert shown_parts(line) == [], line


@pytest.mark.parametrize(
    "subdomain",
    [f"robot@acme.example/token:{ZENDESK_TOKEN}", f"{BASE64_TOKEN}", "acme?" + FRESHDESK_KEY],
)
def test_zendesk_base_url_refuses_a_pasted_token_without_repeating_it(subdomain: str) -> None:
    with pytest.raises(ValueError, match="not a Zendesk subdomain") as refused:
        zendesk_base_url(subdomain)
    assert shown_parts(str(refused.value)) == [], refused.value


# --- the one masking function ----------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "https://acme.zendesk.com",
        "http://127.0.0.1:8765/zendesk",
        "127.0.0.1:8765/zendesk",
        "acme.freshdesk.com",
        "2026-01-01T00:00:00Z",
        "America/Argentina/Buenos_Aires",
        "9 to 5",
    ],
)
def test_ordinary_values_are_shown_as_they_are(value: str) -> None:
    assert masked_setting(value) == value


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (PASTED["user-info"], f"https://{MASK}@acme.zendesk.com"),
        (PASTED["freshdesk key user-info"], f"https://{MASK}@acme.freshdesk.com"),
        (PASTED["query on http"], f"http://acme.zendesk.com/?{MASK}"),
        (PASTED["fragment"], f"https://acme.zendesk.com/#{MASK}"),
        (ZENDESK_TOKEN, MASK),
        (BASE64_TOKEN, MASK),
        (f"https://acme.zendesk.com/{ZENDESK_TOKEN}", f"https://acme.zendesk.com/{MASK}"),
    ],
)
def test_what_may_be_a_secret_is_masked_and_the_rest_kept(value: str, shown: str) -> None:
    assert masked_setting(value) == shown
