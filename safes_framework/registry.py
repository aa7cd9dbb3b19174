"""Typed registries handed to registration hooks: one place that validates names and interfaces."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .errors import ConfigError, PluginError, PluginUnavailableError, UnknownPluginError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_\-]*$")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered component.

    Attributes:
        name: the name users look it up by.
        factory: a class or callable returning an instance.
        description: one line for `safes plugins`.
        plugin: the name of the plugin that registered it (its origin).
    """

    name: str
    factory: Callable[..., T]
    description: str
    plugin: str

    def unavailable_reason(self) -> str | None:
        """Why the component cannot be created here (e.g. a missing optional dependency, with
        the command that installs it), or None when it can.

        A factory states this through an optional callable attribute `unavailable_reason()`
        returning None or that sentence; factories without one are always available.
        """
        check = getattr(self.factory, "unavailable_reason", None)
        if check is None or not callable(check):
            return None
        reason = check()
        return None if reason is None else str(reason)

    @property
    def available(self) -> bool:
        """Whether the component can be created here (see `unavailable_reason`)."""
        return self.unavailable_reason() is None


class Registry(Generic[T]):
    """Components of one kind (synthesizer, fairness transformer or metric), by name.

    Args:
        kind: human-readable kind, used in messages ("synthesizer").
        base: the interface every instance must implement.
    """

    def __init__(self, kind: str, base: type[T]) -> None:
        self.kind = kind
        self.base = base
        self._entries: dict[str, Entry[T]] = {}
        self._plugin = "<direct>"
        #: Installed plugins that are not in use, with why (named when a lookup fails).
        self.unavailable = ""

    def _for_plugin(self, plugin: str) -> Registry[T]:
        self._plugin = plugin
        return self

    def add(self, name: str, factory: Callable[..., T], *, description: str = "") -> None:
        """Register `factory` under `name`.

        Raises:
            PluginError: bad name, name already taken (naming both plugins), or a class that
                does not implement the interface.
        """
        if not isinstance(name, str) or not _NAME.match(name):
            raise PluginError(
                f"plugin {self._plugin!r}: {self.kind} name {name!r} must be lower-case letters, "
                "digits, '-' or '_', starting with a letter"
            )
        if name in self._entries:
            raise PluginError(
                f"{self.kind} {name!r} is registered twice: by plugin "
                f"{self._entries[name].plugin!r} and by plugin {self._plugin!r}"
            )
        if inspect.isclass(factory):
            if not issubclass(factory, self.base):  # type: ignore[arg-type]
                raise PluginError(
                    f"plugin {self._plugin!r}: {self.kind} {name!r} ({factory.__qualname__}) "
                    f"does not subclass {self.base.__module__}.{self.base.__qualname__}"
                )
            if inspect.isabstract(factory):
                missing = sorted(getattr(factory, "__abstractmethods__", ()))
                raise PluginError(
                    f"plugin {self._plugin!r}: {self.kind} {name!r} leaves abstract methods "
                    f"{missing} unimplemented"
                )
        elif not callable(factory):
            raise PluginError(f"plugin {self._plugin!r}: {self.kind} {name!r} is not callable")
        doc = description or (inspect.getdoc(factory) or "").split("\n")[0]
        self._entries[name] = Entry(name, factory, doc, self._plugin)

    def _discard(self, plugin: str) -> None:
        """Forget every entry `plugin` registered (it was disabled)."""
        for name in [n for n, e in self._entries.items() if e.plugin == plugin]:
            del self._entries[name]

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def entry(self, name: str) -> Entry[T]:
        if name not in self._entries:
            installed = ", ".join(self.names()) or "none"
            note = f"; plugins not in use: {self.unavailable}" if self.unavailable else ""
            raise UnknownPluginError(
                f"no {self.kind} named {name!r}; installed {self.kind}s: {installed}{note}"
            )
        return self._entries[name]

    def create(self, name: str, **params: Any) -> T:
        """A configured instance of `name`.

        Raises:
            UnknownPluginError: listing what is installed.
            PluginUnavailableError: the component is registered but cannot run here (the
                message says what to install).
            ConfigError: parameters the factory does not accept (listing those it does).
        """
        entry = self.entry(name)
        reason = entry.unavailable_reason()
        if reason is not None:
            raise PluginUnavailableError(f"{self.kind} {name!r} is unavailable: {reason}")
        try:
            sig = inspect.signature(entry.factory)
        except (TypeError, ValueError):
            sig = None
        if sig is not None:
            try:
                sig.bind(**params)
            except TypeError as exc:
                accepted = [
                    p.name
                    for p in sig.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                ]
                raise ConfigError(
                    f"{self.kind} {name!r}: {exc}; accepted parameters: {accepted}"
                ) from None
        instance = entry.factory(**params)
        if not isinstance(instance, self.base):
            raise PluginError(
                f"plugin {entry.plugin!r}: factory of {self.kind} {name!r} returned "
                f"{type(instance).__name__}, not a {self.base.__qualname__}"
            )
        return instance
