"""The agents' apps as their vendors' tools take them, checked without a browser or an account.

Zendesk validates an app only on an account (`zcli apps:validate` posts the zip to
/api/v2/apps/validate), and the Freshworks CLI is not published where CI can reach it, so the
rules those tools apply are checked here: the manifest's required keys, the locations and the
files they name, the translations, the installation settings the scripts read. Also: both apps
carry the same panel as apps/panel, the vendored SDK is the file its README names, and no page
loads anything from the internet. The apps in a browser: tests/test_apps_browser.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

APPS = Path(__file__).resolve().parent.parent / "apps"
ZENDESK = APPS / "zendesk"
FRESHDESK = APPS / "freshdesk"


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


# --- Zendesk -----------------------------------------------------------------------------------


def test_zendesk_manifest_has_what_zendesk_requires() -> None:
    manifest = _json(ZENDESK / "manifest.json")
    for key in ("author", "defaultLocale", "location", "frameworkVersion"):
        assert key in manifest, key
    assert set(manifest["author"]) >= {"name", "email", "url"}
    assert manifest["frameworkVersion"] == "2.0"
    assert isinstance(manifest["private"], bool)
    assert re.fullmatch(r"[a-z]{2}(-\w{2,3})?", manifest["defaultLocale"])
    sidebar = manifest["location"]["support"]["ticket_sidebar"]
    assert isinstance(sidebar["flexible"], bool)
    assert sidebar["url"].startswith("assets/")
    assert (ZENDESK / sidebar["url"]).is_file()


def test_zendesk_parameters_pass_zendesks_rules() -> None:
    """zendesk_apps_support's manifest rules on parameters: named, unique, not `name`,
    `required` a boolean, none both hidden and required; the author's url a URL."""
    manifest = _json(ZENDESK / "manifest.json")
    names = [p["name"] for p in manifest["parameters"]]
    assert len(names) == len(set(names))
    assert "name" not in names
    for parameter in manifest["parameters"]:
        assert isinstance(parameter["required"], bool), parameter["name"]
        assert not (parameter["type"] == "hidden" and parameter["required"]), parameter["name"]
    assert re.fullmatch(r"https?://[^\s/]+\.[^\s/]+(/\S*)?", manifest["author"]["url"])
    assert re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", manifest["author"]["email"])
    for key in ("name", "version", "defaultLocale", "frameworkVersion"):
        assert isinstance(manifest[key], str), key
    # The one location there is, on the one host this app is for.
    assert set(manifest["location"]) == {"support"}
    assert set(manifest["location"]["support"]) == {"ticket_sidebar"}


def test_every_zendesk_translation_file_is_a_locale_and_json() -> None:
    for path in sorted((ZENDESK / "translations").iterdir()):
        assert path.suffix == ".json", path.name
        assert re.fullmatch(r"[a-z]{2}(-\w{2,3})?", path.stem), path.name
        assert isinstance(_json(path)["app"]["name"], str), path.name


def test_zendesk_required_files_and_translations() -> None:
    manifest = _json(ZENDESK / "manifest.json")
    assert _png_size(ZENDESK / "assets" / "logo.png") == (320, 320)
    assert _png_size(ZENDESK / "assets" / "logo-small.png") == (128, 128)
    translations = _json(ZENDESK / "translations" / f"{manifest['defaultLocale']}.json")
    app = translations["app"]
    # What a public listing needs, beyond the name a private app needs.
    for key in ("name", "short_description", "long_description", "installation_instructions"):
        assert app[key].strip(), key
    for parameter in manifest["parameters"]:
        assert parameter["type"] in {"text", "number", "checkbox", "url", "multiline", "hidden"}
        label = app["parameters"][parameter["name"]]
        assert label["label"], parameter["name"]
        assert label["helpText"], parameter["name"]


def test_zendesk_script_reads_the_settings_the_manifest_declares() -> None:
    manifest = _json(ZENDESK / "manifest.json")
    script = (ZENDESK / "assets" / "zendesk.js").read_text()
    declared = {p["name"] for p in manifest["parameters"]}
    read = set(re.findall(r"settings\.(\w+)", script))
    assert read == declared


def test_the_vendored_zaf_sdk_is_the_file_its_readme_names() -> None:
    vendor = ZENDESK / "assets" / "vendor"
    readme = (vendor / "README.md").read_text()
    digest = hashlib.sha256((vendor / "zaf_sdk.min.js").read_bytes()).hexdigest()
    assert f"`{digest}`" in readme
    assert "Apache License" in (vendor / "LICENSE").read_text()
    assert (vendor / "zaf_sdk.min.js.LICENSE.txt").is_file()


# --- Freshdesk ---------------------------------------------------------------------------------


def test_freshdesk_manifest_is_platform_3() -> None:
    manifest = _json(FRESHDESK / "manifest.json")
    assert manifest["platform-version"] == "3.0"
    assert "common" in manifest["modules"]
    sidebar = manifest["modules"]["support_ticket"]["location"]["ticket_sidebar"]
    assert (FRESHDESK / "app" / sidebar["url"]).is_file()
    assert (FRESHDESK / "app" / sidebar["icon"]).is_file()
    assert set(manifest["engines"]) == {"node", "fdk"}


def test_freshdesk_page_takes_the_platforms_client_and_iparams_are_complete() -> None:
    page = (FRESHDESK / "app" / "index.html").read_text()
    assert '<script src="{{{appclient}}}"></script>' in page
    iparams = _json(FRESHDESK / "config" / "iparams.json")
    for name, spec in iparams.items():
        assert spec["type"] == "text", name
        assert spec["display_name"], name
        assert spec["description"], name
    script = (FRESHDESK / "app" / "scripts" / "freshdesk.js").read_text()
    assert set(re.findall(r"\bparams\.(\w+)", script)) == set(iparams)


# --- both --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "copy",
    [
        ZENDESK / "assets" / "panel.js",
        ZENDESK / "assets" / "panel.css",
        FRESHDESK / "app" / "scripts" / "panel.js",
        FRESHDESK / "app" / "styles" / "panel.css",
    ],
    ids=lambda p: str(p.relative_to(APPS)),
)
def test_each_app_carries_the_shared_panel(copy: Path) -> None:
    """Each vendor zips an app's folder alone, so each holds a copy (apps/copy-panel)."""
    assert copy.read_bytes() == (APPS / "panel" / copy.name).read_bytes(), (
        f"{copy.relative_to(APPS)} differs from apps/panel/{copy.name}: run apps/copy-panel"
    )


def _pages() -> list[Path]:
    return sorted(APPS.rglob("*.html"))


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(APPS)))
def test_no_page_loads_anything_from_the_internet(page: Path) -> None:
    text = page.read_text()
    for reference in re.findall(r"""(?:src|href)\s*=\s*["']?([^"'\s>]+)""", text):
        assert "//" not in reference, f"{page.relative_to(APPS)} loads {reference}"
        if reference != "{{{appclient}}}":
            assert (page.parent / reference).is_file(), f"{page.relative_to(APPS)}: {reference}"


@pytest.mark.parametrize(
    "sheet", sorted(APPS.rglob("*.css")), ids=lambda p: str(p.relative_to(APPS))
)
def test_no_stylesheet_loads_anything(sheet: Path) -> None:
    text = sheet.read_text()
    assert "@import" not in text
    assert "url(" not in text, f"{sheet.relative_to(APPS)} loads a resource"


def test_our_scripts_make_no_requests() -> None:
    calls = (
        "fetch(",
        "XMLHttpRequest",
        "WebSocket",
        "EventSource",
        "sendBeacon",
        "importScripts",
        "new Image",
        "import(",
        "eval(",
        "new Function",
        ".src =",
        "innerHTML",
    )
    for script in [*APPS.rglob("*.js")]:
        if "vendor" in script.parts:
            continue
        text = script.read_text()
        for call in calls:
            assert call not in text, f"{script.relative_to(APPS)} uses {call}"
