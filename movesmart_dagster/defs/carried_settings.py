"""How a resource carries settings: each declared once, in `Settings`.

Why this shape: `movesmart_dagster.settings.Settings` is the single source of defaults and
validation. A resource names the settings it carries (`carrying(...)`); each becomes an optional
string field described by its variable, set to `EnvVar(<variable>)` when that variable is present
in the environment of the process that loads the definitions (so the UI shows where the value
comes from and no value — least of all a secret — is written in code), else unset. At run time
the resource turns its fields back into a `Settings` (`settings()`), so every consumer sees the
same validated view and a launchpad value is checked like the variable would be.
"""

import os
from collections.abc import Mapping
from typing import Any, ClassVar

import dagster as dg
import pydantic
from pydantic import Field as PField

from movesmart_dagster.settings import Settings, load_settings


def variable_of(field: str) -> str:
    """The environment variable a settings field is read from."""
    alias = Settings.model_fields[field].alias
    assert alias, field
    return alias


def env_or_default(field: str) -> Any:
    """`EnvVar(<alias>)` when the variable is set, else None (the settings default applies)."""
    variable = variable_of(field)
    return dg.EnvVar(variable) if variable in os.environ else None


def settings_with(overrides: Mapping[str, Any]) -> Settings:
    """Settings from the process environment with resource fields (by settings field) on top."""
    env = dict(os.environ)
    for field, value in overrides.items():
        if value is None or value == "":
            continue
        env[variable_of(field)] = str(value)
    return load_settings(env)


class _SettingsResource(dg.ConfigurableResource):
    """Base: subclasses name the settings fields they carry; `settings()` rebuilds Settings."""

    _FIELDS: ClassVar[tuple[str, ...]] = ()  # set by `carrying`

    def settings(self) -> Settings:
        return settings_with({f: getattr(self, f) for f in self._FIELDS})

    @classmethod
    def from_env(cls, **extra: Any) -> Any:
        kwargs = {f: env_or_default(f) for f in cls._FIELDS}
        kwargs = {k: v for k, v in kwargs.items() if v is not None}
        return cls(**{**kwargs, **extra})


def carrying(*fields: str) -> Any:
    """A resource base class with these `Settings` fields as its config, each declared once, in
    `Settings`: here every one is an optional string (unset: the settings default applies; set,
    the value is validated by `Settings` like the variable would be), described by its variable.

    Why strings: the values reach `Settings` as environment variables do (`settings_with`), so a
    launchpad override is checked by the same rules and reaches a child process the same way."""
    for f in fields:
        variable_of(f)  # every name is a settings field with a documented variable
    base = pydantic.create_model(
        "SettingsFields",
        __base__=_SettingsResource,
        **{
            f: (str | None, PField(default=None, description=f"{variable_of(f)} (unset: its default)"))
            for f in fields
        },
    )
    base._FIELDS = tuple(fields)
    return base
