"""sqlops.toml of any content: the project loads, or the error names a file and says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlops.errors import ConfigError
from sqlops.project.loader import Project, load_project
from tests.property.conftest import (
    BASE,
    MODEL,
    SET_VAR,
    UNSET_VAR,
    encoded,
    load_or_user_error,
    project,
    settings_files,
)

# a setting can make a model or seed wrong too (a schema named like the DuckDB file, a dialect
# that reads the SQL otherwise, a var() of the wrong type): the error names that file then
PROJECT_FILES = {*BASE, MODEL}
MODEL_TEXT = "SELECT id, {{ var('start_date') }} AS d FROM raw.x\n"


@pytest.fixture(autouse=True, scope="module")
def environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SET_VAR, "from-the-environment")
        patch.delenv(UNSET_VAR, raising=False)
        yield


def read_every_setting(project: Project) -> None:
    """[notify] is read only by the commands that notify; read it here too."""
    assert project.config.notify is not None


targets = st.one_of(st.none(), st.sampled_from(["local", "other", "nope", ""]))


@given(settings_files, targets)
def test_any_settings_text_loads_or_gives_an_error(text: str, target: str | None) -> None:
    load_or_user_error(
        {"sqlops.toml": text, MODEL: MODEL_TEXT},
        PROJECT_FILES,
        target=target,
        then=read_every_setting,
    )


@given(encoded(settings_files))
def test_settings_of_any_bytes_load_or_give_an_error(raw: bytes) -> None:
    load_or_user_error(
        {"sqlops.toml": raw, MODEL: MODEL_TEXT}, PROJECT_FILES, then=read_every_setting
    )


@pytest.mark.parametrize("level", ["2024-01-01", "07:30:00", "[2024-01-01]"])
def test_a_date_as_a_monitor_level_is_a_settings_error(level: str) -> None:
    text = f"[project]\nname = 'x'\n[monitor]\nsource_volume = {level}\n"
    assert load_or_user_error({"sqlops.toml": text}, {"sqlops.toml"}) is None
    with project({"sqlops.toml": text}) as root, pytest.raises(ConfigError) as info:
        load_project(root, use_cache=False)
    assert info.value.message == (
        f"[monitor] source_volume must be one of warn, error, off, not {level}"
    )
    assert info.value.line == 4
