"""The daemon's configuration: a TOML file, overridden by the environment; secrets apart.

Every key of the file can be overridden by `SLA_CONNECTOR_<KEY>` (nested keys joined with
`__`, e.g. `SLA_CONNECTOR_ZENDESK__URL`). Secrets are never read from the file or the command
line: `secret(name)` takes them from `SLA_CONNECTOR_<NAME>` or from the systemd credential
`$CREDENTIALS_DIRECTORY/<name>`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from connector.errors import (
    ConfigError,
    InputError,
    Problem,
    masked_setting,
    validation_message,
    validation_problems,
)
from connector.http import LOOPBACK_HOSTS
from connector.mappingfiles import default_mappings_dir

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_TENANT",
    "SECRET_NAMES",
    "Settings",
    "TenantSettings",
    "config_path",
    "load_settings",
    "require_secret",
    "secret",
    "secret_names",
]

DEFAULT_CONFIG = Path("/etc/sla-connector/config.toml")
ENV_PREFIX = "SLA_CONNECTOR_"
# Every secret the connector may need, as credential file names.
SECRET_NAMES = (
    "zendesk_api_token",
    "zendesk_oauth_client_secret",
    "zendesk_oauth_refresh_token",
    "freshdesk_api_key",
    "state_password",
)
# The one account of a configuration without `[[tenants]]` (its secrets have plain names).
DEFAULT_TENANT = "default"
# The sections of the file: no tenant takes one's name (its secrets' environment variables,
# SLA_CONNECTOR_<TENANT>__<SECRET>, would read as that section's keys).
_SECTIONS = ("zendesk", "freshdesk", "metrics", "log", "tenants")


def _default_state_dir() -> Path:
    if state := os.environ.get("STATE_DIRECTORY"):  # set by systemd's StateDirectory=
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sla-connector"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _helpdesk_url(url: str | None) -> str | None:
    """A helpdesk's base URL: HTTPS, or plain HTTP on loopback only (the sandbox).

    Credentials never go in the URL (they would show in every message that names it), nor
    does a query or a fragment (a base URL has none; a token pasted as `?api_token=` would
    show the same way): the error says where they belong and does not repeat them.
    """
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # an unbalanced IPv6 bracket
        parts = urlsplit("")
    if parts.username is not None or parts.password is not None:
        raise PydanticCustomError(
            "url_credentials",
            "credentials do not belong in the URL: set the secrets in the environment or as "
            "systemd credentials",
        )
    if parts.query or parts.fragment:
        raise PydanticCustomError(
            "url_query",
            "a base URL has no query or fragment (credentials never go in the URL: set the "
            "secrets in the environment or as systemd credentials), got {url}",
            {"url": repr(masked_setting(url))},
        )
    host = (parts.hostname or "").lower()
    if (parts.scheme == "https" and host) or (parts.scheme == "http" and host in LOOPBACK_HOSTS):
        return url
    raise PydanticCustomError(
        "url_scheme",
        "expected an https:// URL (http:// only on loopback: localhost, 127.0.0.1, [::1]), "
        "got {url}",
        {"url": repr(masked_setting(url))},
    )


class ZendeskSettings(_Section):
    """`[zendesk]`: where the account is and how to sign in."""

    url: str | None = None
    email: str | None = None
    auth: Literal["api_token", "oauth"] = "api_token"
    client_id: str | None = None
    # The share of the Update Ticket budget (100 a minute an account) the connector may spend:
    # the agents' own updates in the Zendesk UI spend the same budget.
    update_share: float = Field(default=0.5, gt=0, le=1)
    # Bursts of writes (a backfill's pages, the first poll, many tickets turning at risk at
    # once) go in update_many jobs of up to 100 tickets: one request of the account's budget
    # and none of Update Ticket's. Off: one update a ticket, always.
    batch_writes: bool = True

    _https_only = field_validator("url")(_helpdesk_url)


class FreshdeskSettings(_Section):
    """`[freshdesk]`: where the account is (the API key is a secret)."""

    url: str | None = None
    # The plan, for its per-endpoint sub-limits (Freshdesk announces none), and the share of
    # them the connector may spend (the account's other integrations spend them too).
    plan: Literal["growth", "pro", "enterprise"] | None = None
    budget_share: float = Field(default=1.0, gt=0, le=1)

    _https_only = field_validator("url")(_helpdesk_url)


class MetricsSettings(_Section):
    """`[metrics]`: a loopback scrape endpoint (`host:port`) and/or a textfile path."""

    listen: str | None = None
    textfile: Path | None = None

    @field_validator("listen", "textfile", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value


class LogSettings(_Section):
    """`[log]`: JSON lines for journald, or readable lines on a terminal."""

    format: Literal["auto", "json", "console"] = "auto"
    level: Literal["debug", "info", "warning", "error"] = "info"


class TenantSettings(_Section):
    """`[[tenants]]`: one helpdesk account of several served from one configuration.

    Its own helpdesk, mappings and budgets; its secrets by its name (`<name>.zendesk_api_token`
    as a systemd credential, `SLA_CONNECTOR_<NAME>__ZENDESK_API_TOKEN` in the environment).
    The one account of a file without tenants is `default`: named so here, it keeps its rows of
    the state and its secrets' plain names.
    """

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")
    helpdesk: Literal["zendesk", "freshdesk"]
    mappings: Path | None = None
    helpdesk_mapping: Path | None = None
    start: AwareDatetime | None = None
    zendesk: ZendeskSettings = ZendeskSettings()
    freshdesk: FreshdeskSettings = FreshdeskSettings()

    @field_validator("name")
    @classmethod
    def _not_a_section(cls, name: str) -> str:
        if name in _SECTIONS:
            raise PydanticCustomError(
                "tenant_name",
                "{name} is a name the configuration keeps for itself: choose another",
                {"name": repr(name)},
            )
        return name


class Settings(BaseSettings):
    """Everything `run`, `sync`, `backfill`, `explain` and `check` need, secrets excepted.

    One helpdesk account (`helpdesk` and its section), or several (`[[tenants]]`, each with
    its own): `accounts()` gives the settings of each, as if it were alone.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    # Before `helpdesk`: its check reads them.
    tenants: tuple[TenantSettings, ...] = ()
    helpdesk: Literal["zendesk", "freshdesk"] | None = Field(default=None, validate_default=True)
    mappings: Path = Field(default_factory=default_mappings_dir)
    helpdesk_mapping: Path | None = None
    state_dir: Path = Field(default_factory=_default_state_dir)
    # A PostgreSQL database for the state instead of the file in `state_dir` (several hosts).
    # Its password is a secret (`state_password`), never part of the URL.
    state_url: str | None = Field(default=None, pattern=r"^postgres(ql)?://")
    # How long a daemon's claim on a server state lasts unrenewed: a standby daemon takes over
    # within it after the holder dies (it is renewed every third of it).
    state_lease_seconds: float = Field(default=30.0, ge=3, le=600)
    # With `[[tenants]]` on a server state: the most tenants one daemon serves (the daemons
    # share them out evenly below that; unset: as many as its share).
    tenants_per_daemon: int | None = Field(default=None, ge=1, le=10_000)
    # The most connections one daemon holds to a PostgreSQL state: its tenants take turns on
    # them (transactions are short). The daemons times this must stay under the server's
    # max_connections, with room for the admin's own.
    state_connections: int = Field(default=10, ge=2, le=500)
    # Whose rows of the state these settings read and write: `accounts()` sets it; not a key
    # of the file.
    tenant: str = Field(default=DEFAULT_TENANT, exclude=True)
    # Where its keys are in the file when they are a tenant's: `[[tenants]]`'s index.
    tenant_index: int | None = Field(default=None, exclude=True)

    @field_validator("helpdesk")
    @classmethod
    def _one_or_tenants(cls, helpdesk: str | None, info: ValidationInfo) -> str | None:
        tenants = info.data.get("tenants")
        if helpdesk is None and not tenants and "tenants" in info.data:
            raise PydanticCustomError("missing", "Field required")
        if helpdesk is not None and tenants:
            raise PydanticCustomError(
                "tenants_and_helpdesk",
                "set per tenant when the configuration names [[tenants]]: each names its helpdesk",
            )
        return helpdesk

    @field_validator("tenants")
    @classmethod
    def _distinct_names(cls, tenants: tuple[TenantSettings, ...]) -> tuple[TenantSettings, ...]:
        seen: set[str] = set()
        for tenant in tenants:
            if tenant.name in seen:
                raise PydanticCustomError(
                    "tenant_twice",
                    "tenant {name} is named twice: each account once",
                    {"name": repr(tenant.name)},
                )
            seen.add(tenant.name)
        return tenants

    @field_validator("state_url")
    @classmethod
    def _no_password_in_url(cls, url: str | None) -> str | None:
        if url is not None and re.search(r"^[a-z]+://[^/@]*:[^/@]*@|[?&]password=", url):
            raise ValueError(
                "holds a password: give it as the secret state_password (the systemd "
                "credential, or SLA_CONNECTOR_STATE_PASSWORD), not in the URL"
            )
        return url

    poll_interval: int = Field(default=60, ge=1, le=3600)
    start: AwareDatetime | None = None
    zendesk: ZendeskSettings = ZendeskSettings()
    freshdesk: FreshdeskSettings = FreshdeskSettings()
    metrics: MetricsSettings = MetricsSettings()
    log: LogSettings = LogSettings()
    # Where the settings came from, for messages; not a key of the file.
    source: str = Field(default="<defaults>", exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment wins over them (but never
        # sets the fields that are not keys: `tenant`, `source`).
        return _Environment(settings_cls), init_settings

    @model_validator(mode="after")
    def _no_account_sections_beside_tenants(self) -> Settings:
        if self.tenants:
            keys = ("zendesk", "freshdesk", "helpdesk_mapping", "start")
            given = [key for key in keys if key in self.model_fields_set]
            if given:
                raise PydanticCustomError(
                    "tenants_and_account",
                    "{keys} belong to each tenant when the configuration names [[tenants]] "
                    "(put them under [[tenants]] / [tenants.zendesk])",
                    {"keys": ", ".join(given)},
                )
        return self

    def accounts(self) -> list[Settings]:
        """The settings of each helpdesk account, each as if it were alone: this one when
        the file names no `[[tenants]]`, else one per tenant (the shared keys, its own)."""
        if not self.tenants:
            return [self]
        return [
            self.model_copy(
                update={
                    "tenant": tenant.name,
                    "tenant_index": index,
                    "helpdesk": tenant.helpdesk,
                    "mappings": tenant.mappings or self.mappings,
                    "helpdesk_mapping": tenant.helpdesk_mapping,
                    "start": tenant.start,
                    "zendesk": tenant.zendesk,
                    "freshdesk": tenant.freshdesk,
                    "tenants": (),
                }
            )
            for index, tenant in enumerate(self.tenants)
        ]

    def key(self, path: str) -> str:
        """A key as the file names it: `zendesk.url`, or a tenant's `tenants.1.zendesk.url`."""
        return path if self.tenant_index is None else f"tenants.{self.tenant_index}.{path}"

    def account(self, name: str | None) -> Settings:
        """One account's settings: `name`'s, or the only one's (None); `InputError` naming
        the tenants there are when `name` is none of them, or is needed and missing."""
        accounts = {a.tenant: a for a in self.accounts()}
        if name is None and len(accounts) == 1:
            return next(iter(accounts.values()))
        if name is not None and name in accounts:
            return accounts[name]
        names = ", ".join(accounts)
        if name is None:
            raise InputError(
                f"{self.source} names {len(accounts)} tenants ({names}): choose one with "
                "--tenant NAME"
            )
        if not self.tenants:
            raise InputError(f"--tenant {name}: {self.source} names no [[tenants]]")
        raise InputError(f"--tenant {name}: no such tenant in {self.source} ({names})")

    @property
    def kind(self) -> Literal["zendesk", "freshdesk"]:
        """The helpdesk of one account's settings (`accounts()` gives them)."""
        if self.helpdesk is None:
            names = ", ".join(t.name for t in self.tenants)
            raise InputError(f"{self.source} names several tenants ({names}): choose one")
        return self.helpdesk

    @property
    def batch_writes(self) -> bool:
        """Whether bursts of writes may go in the helpdesk's batch jobs (`[zendesk]
        batch_writes`; Freshdesk has none)."""
        return self.zendesk.batch_writes

    @property
    def mapping_file(self) -> Path:
        """The helpdesk mapping file: as configured, else `<mappings>/helpdesks/<helpdesk>.yaml`."""
        if self.helpdesk_mapping is not None:
            return self.helpdesk_mapping
        return self.mappings / "helpdesks" / f"{self.helpdesk}.yaml"

    @property
    def state_file(self) -> Path:
        """The SQLite state database."""
        return self.state_dir / "state.sqlite3"

    @property
    def state_where(self) -> str:
        """Where the state is, for messages: the file, or the server without its password."""
        if self.state_url is None:
            return str(self.state_file)
        from connector.state.postgres import display_url

        return display_url(self.state_url)

    @property
    def helpdesk_url(self) -> str:
        """The configured base URL of the helpdesk in use."""
        section = self.zendesk if self.helpdesk == "zendesk" else self.freshdesk
        if not section.url:
            raise ConfigError(
                [Problem(self.source, self.key(f"{self.helpdesk}.url"), "required key is missing")]
            )
        return section.url

    def first_poll_start(self, now: datetime) -> datetime:
        """Where the very first poll starts: `start`, else a day before `now`."""
        return self.start if self.start is not None else now - timedelta(days=1)


class _Environment(EnvSettingsSource):
    """`SLA_CONNECTOR_*` variables, without the fields that are not keys of the file."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        for hidden in ("tenant", "tenant_index", "source"):
            values.pop(hidden, None)
        return values


def config_path(given: Path | None) -> Path | None:
    """`--config`, else `$SLA_CONNECTOR_CONFIG`, else the default file if it exists.

    None: no file at all, the environment alone (`load_settings` says which file it looked
    for when the environment does not hold a configuration either).
    """
    if given is not None:
        return given
    if env := os.environ.get("SLA_CONNECTOR_CONFIG"):
        return Path(env)
    try:
        return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None
    except OSError:  # behind a folder this user may not enter: reading it will say so
        return DEFAULT_CONFIG


def load_settings(path: Path | None, **overrides: Any) -> Settings:
    """Settings from `path` (TOML; None: the environment alone) with `overrides` on top.

    Raises ConfigError naming the file and key of every problem.
    """
    source = str(path) if path is not None else "<environment>"
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            named = " (named by SLA_CONNECTOR_CONFIG)" if _from_environment(path) else ""
            raise ConfigError([Problem(source, "", f"no such file{named}")]) from None
        except OSError as exc:  # its message repeats the path
            why = f"cannot be read ({exc.strerror or exc})"
            raise ConfigError([Problem(source, "", why)]) from None
        except UnicodeDecodeError as exc:
            why = f"not UTF-8 text: byte {exc.object[exc.start]:#04x} at offset {exc.start}"
            raise ConfigError([Problem(source, "", why)]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([Problem(source, "", f"is not valid TOML: {exc}")]) from None
    secrets = [
        Problem(
            source,
            key,
            f"secrets do not belong in the file: set {ENV_PREFIX}{name.upper()} or "
            f"the systemd credential {name}",
        )
        for key, name in _secret_keys(values)
    ]
    if secrets:
        raise ConfigError(secrets)
    # Fields of Settings, but not keys of the file.
    for field in ("source", "tenant", "tenant_index"):
        if field in values:
            unknown = {"type": "extra_forbidden", "loc": (field,)}
            raise ConfigError([Problem(source, field, validation_message(unknown, Settings))])
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(**values, source=source)
    except ValidationError as exc:
        problems = [
            Problem(_origin(source, loc), ".".join(str(part) for part in loc), message)
            for loc, message in validation_problems(exc, Settings)
        ]
        missing_file = _no_file() if path is None else None
        if missing_file is not None:
            # No file, and the environment does not say which helpdesk: the file is missing,
            # not the key.
            problems = [
                missing_file if (p.file, p.key) == (source, "helpdesk") else p for p in problems
            ]
        raise ConfigError(problems) from None


def _from_environment(path: Path) -> bool:
    """Whether `path` is the file `$SLA_CONNECTOR_CONFIG` names."""
    return os.environ.get("SLA_CONNECTOR_CONFIG") == str(path)


def _no_file() -> Problem | None:
    """The default configuration file, looked for and not found (None: it is there)."""
    try:
        if DEFAULT_CONFIG.is_file():
            return None
        why = "is not a file" if DEFAULT_CONFIG.exists() else "no such file"
    except OSError as exc:  # a folder on the way that this user may not enter
        why = f"cannot be read ({exc.strerror or exc})"
    return Problem(
        str(DEFAULT_CONFIG),
        "",
        f"{why} (the default configuration file): give one with --config FILE or "
        f"{ENV_PREFIX}CONFIG, or set {ENV_PREFIX}HELPDESK to configure from the environment alone",
    )


def _secret_keys(values: dict[str, Any], within: str = "") -> Iterator[tuple[str, str]]:
    """Key paths holding a secret: `zendesk_api_token`, or `api_token` under `[zendesk]`;
    the same under each `[[tenants]]` (`tenants.0.zendesk.api_token`)."""
    for name in SECRET_NAMES:
        if name in values:
            yield within + name, name
        section, _, key = name.partition("_")
        table = values.get(section)
        if isinstance(table, dict) and key in table:
            yield f"{within}{section}.{key}", name
    tenants = values.get("tenants")
    if not within and isinstance(tenants, list):
        for number, tenant in enumerate(tenants):
            if isinstance(tenant, dict):
                yield from _secret_keys(tenant, f"tenants.{number}.")


def _origin(source: str, loc: tuple[int | str, ...]) -> str:
    """Where a bad value came from: the `SLA_CONNECTOR_*` variable that set it, else `source`."""
    names = {name.upper() for name in os.environ}
    parts = [str(part).upper() for part in loc]
    for end in range(len(parts), 0, -1):
        name = ENV_PREFIX + "__".join(parts[:end])
        if name in names:
            return f"environment {name}"
    return source


def secret_names(name: str, tenant: str = DEFAULT_TENANT) -> tuple[str, str]:
    """Where a tenant's secret is looked for: the environment variable and the systemd
    credential (`SLA_CONNECTOR_ZENDESK_API_TOKEN` and `zendesk_api_token` for the one account
    of a file without tenants; `SLA_CONNECTOR_ACME__ZENDESK_API_TOKEN` and
    `acme.zendesk_api_token` for tenant `acme`)."""
    if tenant == DEFAULT_TENANT:
        return ENV_PREFIX + name.upper(), name
    return f"{ENV_PREFIX}{tenant.upper().replace('-', '_')}__{name.upper()}", f"{tenant}.{name}"


def secret(name: str, tenant: str = DEFAULT_TENANT) -> SecretStr | None:
    """A secret from the environment or the systemd credentials (`secret_names`; None:
    unset)."""
    variable, credential = secret_names(name, tenant)
    if value := os.environ.get(variable, "").strip():
        return SecretStr(value)
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if folder:
        path = Path(folder) / credential
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([Problem(str(path), "", f"cannot be read ({exc})")]) from None
        return SecretStr(text) if text else None
    return None


def require_secret(name: str, source: str, tenant: str = DEFAULT_TENANT) -> SecretStr:
    """`secret(name, tenant)`, or a ConfigError saying where to put it."""
    value = secret(name, tenant)
    if value is None:
        variable, credential = secret_names(name, tenant)
        whose = "" if tenant == DEFAULT_TENANT else f" of tenant {tenant}"
        raise ConfigError(
            [
                Problem(
                    source,
                    credential,
                    f"secret{whose} not set: set {variable} or the systemd credential "
                    f"{credential} (LoadCredential=)",
                )
            ]
        )
    return value
