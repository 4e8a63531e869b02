"""Settings that follow a YAML file: limits and the model table reload without a restart.

The file (``CONFIG_FILE``) holds a ``limits`` mapping, a ``models`` table and the gateway's
``gateway:`` section (``docs/gateway.md``), for example::

    limits:
      rate_limit_requests: 200
      rate_limit_window_seconds: 60
      max_window_tokens: 64000
      max_sessions_per_user: 20
    models:
      gpt-4o: {context_window: 128000, max_output_tokens: 16384, encoding: o200k_base}

Only the fields in :data:`~relay_context.config.settings.RELOADABLE_FIELDS` may appear (others,
such as ``database_url``, need a restart and are refused). The file's values override the
environment's. :meth:`LiveSettings.refresh` looks at the file's modification time at most every
``config_reload_interval_seconds``; an edit that does not parse or validate is logged and the
last good values stay in force.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from relay_context.config.settings import RELOADABLE_FIELDS, Settings
from relay_context.config.yaml_lines import line_of, top_level_keys
from relay_context.errors import InvalidArgumentError

log = logging.getLogger(__name__)

Listener = Callable[[Settings, Settings], None]


def load_overrides(path: Path) -> dict[str, Any]:
    """The reloadable settings the YAML file at ``path`` sets."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read config file {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidArgumentError(f"config file {path} is not valid YAML: {exc}") from exc
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InvalidArgumentError(f"config file {path} must hold a mapping at the top level")
    overrides: dict[str, Any] = {}
    for key, value in document.items():
        if key == "limits":
            if not isinstance(value, dict):
                raise InvalidArgumentError(f"config file {path}: 'limits' must be a mapping")
            overrides.update({str(k).lower(): v for k, v in value.items()})
        else:
            overrides[str(key).lower()] = value
    unknown = sorted(set(overrides) - RELOADABLE_FIELDS)
    if unknown:
        raise InvalidArgumentError(
            f"config file {path}: {', '.join(unknown)} cannot be set there (allowed: "
            f"{', '.join(sorted(RELOADABLE_FIELDS))})"
        )
    return overrides


def apply_overrides(
    base: Settings, overrides: dict[str, Any], *, source: Path | None = None
) -> Settings:
    """``base`` with ``overrides``, validated like the settings themselves; with ``source``
    (the YAML file they came from) each problem names its line."""
    values = {name: getattr(base, name) for name in type(base).model_fields}
    for name, value in overrides.items():
        current = values.get(name)
        # A section (``gateway:``) sets some of its fields; the others keep base's values.
        values[name] = (
            {**current.model_dump(), **value}
            if isinstance(value, dict) and isinstance(current, BaseModel)
            else value
        )
    try:
        return type(base).model_validate(values)
    except ValidationError as exc:
        text = _read_text(source)
        problems = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"])
            line = _line_for(text, e["loc"]) if text is not None else None
            problems.append(f"{f'line {line}: ' if line else ''}{where}: {e['msg']}")
        raise InvalidArgumentError(f"invalid config file values: {'; '.join(problems)}") from exc


def _read_text(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _line_for(text: str, loc: tuple[str | int, ...]) -> int | None:
    """A setting is written at the top level or under ``limits:``."""
    if loc and str(loc[0]).lower() in top_level_keys(text):
        return line_of(text, loc)
    return line_of(text, ("limits", *loc))


class LiveSettings:
    """The settings in force: ``base`` plus the YAML file's values, reloaded on change."""

    def __init__(self, base: Settings) -> None:
        self.base = base
        self.path = base.config_file
        self._current = base
        self._stamp: tuple[int, int] | None = None
        self._next_check = 0.0
        self._listeners: list[Listener] = []
        #: Increases with every applied reload.
        self.generation = 0
        if self.path is not None:
            # At start a bad file is an error: the service does not start half-configured.
            self._stamp = self._stat()
            self._current = apply_overrides(base, load_overrides(self.path), source=self.path)

    @property
    def current(self) -> Settings:
        return self._current

    def on_change(self, listener: Listener) -> None:
        """``listener(old, new)`` runs after each applied reload."""
        self._listeners.append(listener)

    def _stat(self) -> tuple[int, int] | None:
        assert self.path is not None
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size

    def refresh(self, *, force: bool = False) -> bool:
        """Reloads the file if it changed; whether new values were applied."""
        if self.path is None:
            return False
        now = time.monotonic()
        if not force and now < self._next_check:
            return False
        self._next_check = now + self.base.config_reload_interval_seconds
        stamp = self._stat()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        if stamp is None:
            log.error("config file %s disappeared; keeping the last values", self.path)
            return False
        try:
            new = apply_overrides(self.base, load_overrides(self.path), source=self.path)
        except InvalidArgumentError as exc:
            log.error("config file not applied, keeping the last values: %s", exc)
            return False
        old, self._current = self._current, new
        self.generation += 1
        log.info("config file %s reloaded", self.path, extra={"generation": self.generation})
        for listener in self._listeners:
            listener(old, new)
        return True


__all__ = ["LiveSettings", "apply_overrides", "load_overrides"]
