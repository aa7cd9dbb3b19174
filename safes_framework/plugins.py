"""The plugin manager: built-ins from a tuple of modules, third parties from entry points."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .base import FairnessTransformer, Metric, Synthesizer
from .errors import PluginError, PluginWarning
from .registry import Registry

if TYPE_CHECKING:
    from .privacy import LedgerEntry
    from .release import Release, RunInfo
    from .streaming import StreamedRelease

logger = logging.getLogger(__name__)

#: Entry-point group and pluggy project name.
PROJECT = "safes_framework"

#: The built-in plugins: ordinary plugins, registered by module name.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "safes_plugins.synthesizers.aim",
    "safes_plugins.synthesizers.mst",
    "safes_plugins.synthesizers.dpctgan",
    "safes_plugins.metrics",
    "safes_plugins.fairness.tot",
    "safes_plugins.fairness.reweighing",
)

#: Environment variable naming plugins to skip (comma-separated entry-point or module names).
DISABLE_ENV = "SAFES_DISABLE_PLUGINS"

hookimpl = pluggy.HookimplMarker(PROJECT)


@dataclass(frozen=True)
class UnavailablePlugin:
    """A plugin that is installed but not in use.

    Attributes:
        name: its entry-point name (or module name, for a built-in).
        origin: where it comes from ("entry point (distribution)", "built-in").
        status: "broken" (it failed to load or to register) or "disabled" (skipped on request).
        reason: why, in one line.
    """

    name: str
    origin: str
    status: str
    reason: str


def disabled_from_env() -> frozenset[str]:
    """The plugin names listed in $SAFES_DISABLE_PLUGINS."""
    return frozenset(n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip())


class PluginManager:
    """A typed facade over pluggy's manager: one method per hook, lazily built registries.

    A third-party plugin (entry point) that fails to import, or whose registration hook
    raises, disables only itself: a `PluginWarning` names it and the reason, `unavailable()`
    lists it, and everything else keeps working. A built-in that fails to import, or a plugin
    registered at run time whose hook fails, raises `PluginError` (the installation, or the
    calling code, is broken).

    Args:
        load_entrypoints: also load third-party plugins from the `safes_framework`
            entry-point group.
        builtins: module names of the built-in plugins (default `DEFAULT_PLUGINS`).
        disabled: entry-point or module names to skip without importing them (default: those
            in $SAFES_DISABLE_PLUGINS).
    """

    def __init__(
        self,
        *,
        load_entrypoints: bool = True,
        builtins: tuple[str, ...] = DEFAULT_PLUGINS,
        disabled: Iterable[str] | None = None,
    ) -> None:
        self._pm = pluggy.PluginManager(PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._registries: dict[str, Registry[Any]] = {}
        self._origins: dict[str, str] = {}
        self._unavailable: dict[str, UnavailablePlugin] = {}
        self._disabled = frozenset(disabled_from_env() if disabled is None else disabled)
        for modname in builtins:
            if modname in self._disabled:
                self._skip(modname, "built-in")
                continue
            try:
                module = importlib.import_module(modname)
            except Exception as exc:
                raise PluginError(f"built-in plugin {modname!r} failed to import: {exc!r}") from exc
            self.register(module, name=modname, origin="built-in")
        if load_entrypoints:
            self._load_entrypoints()

    def _skip(self, name: str, origin: str) -> None:
        self._unavailable[name] = UnavailablePlugin(
            name, origin, "disabled", f"disabled by {DISABLE_ENV}"
        )

    def _break(self, name: str, reason: str) -> None:
        """Disable a third-party plugin that failed, and say so once."""
        reason = " ".join(reason.split())
        self._unavailable[name] = UnavailablePlugin(name, self.origin(name), "broken", reason)
        warnings.warn(
            f"plugin {name!r} ({self.origin(name)}) is disabled: {reason}; everything else "
            f"works (skip it with {DISABLE_ENV}={name} or `safes --disable-plugin {name}`)",
            PluginWarning,
            stacklevel=4,
        )

    def _load_entrypoints(self) -> None:
        for ep in importlib.metadata.entry_points(group=PROJECT):
            if self._pm.has_plugin(ep.name) or self._pm.is_blocked(ep.name):
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            origin = f"entry point ({dist})"
            if ep.name in self._disabled:
                self._skip(ep.name, origin)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                logger.debug("plugin %r failed to load", ep.name, exc_info=True)
                self._origins[ep.name] = origin
                self._break(
                    ep.name, f"entry point {ep.value!r} of distribution {dist!r} failed to "
                    f"load: {exc!r}"
                )
                continue
            try:
                self.register(plugin, name=ep.name, origin=origin)
            except PluginError as exc:  # e.g. a hook implementation with wrong arguments
                self._origins[ep.name] = origin
                self._break(ep.name, str(exc))

    def unavailable(self) -> list[UnavailablePlugin]:
        """Plugins that are installed but not in use (broken or disabled), by name."""
        return [self._unavailable[n] for n in sorted(self._unavailable)]

    def register(self, plugin: object, *, name: str | None = None, origin: str = "runtime") -> str:
        """Register a plugin object (module or instance with `@hookimpl` methods)."""
        try:
            registered = self._pm.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(f"cannot register plugin {name or plugin!r}: {exc}") from exc
        if registered is None:
            raise PluginError(f"plugin {name or plugin!r} is blocked")
        self._origins[registered] = origin
        self._registries.clear()
        return registered

    def unregister(self, name: str) -> None:
        self._pm.unregister(name=name)
        self._origins.pop(name, None)
        self._registries.clear()

    def origin(self, plugin: str) -> str:
        return self._origins.get(plugin, "runtime")

    def plugin_names(self) -> list[str]:
        return sorted(n for n, _ in self._pm.list_name_plugin())

    # -- registration hooks -------------------------------------------------------------------

    def _registry(self, hook: str, kind: str, base: type) -> Registry[Any]:
        if hook not in self._registries:
            registry: Registry[Any] = Registry(kind, base)
            caller = getattr(self._pm.hook, hook)
            # Call each implementation on its own, in registration order (built-ins first), so
            # the registry knows every entry's origin.
            for impl in caller.get_hookimpls():
                name = impl.plugin_name
                try:
                    impl.function(register=registry._for_plugin(name))
                except Exception as exc:
                    if not self.origin(name).startswith("entry point"):
                        if isinstance(exc, PluginError):
                            raise
                        raise PluginError(f"plugin {name!r} failed in {hook}: {exc!r}") from exc
                    logger.debug("plugin %r failed in %s", name, hook, exc_info=True)
                    self._disable_loaded(name, f"failed in {hook}: {exc}", registry)
            registry.unavailable = self._unavailable_note()
            self._registries[hook] = registry
        return self._registries[hook]

    def _disable_loaded(self, name: str, reason: str, building: Registry[Any]) -> None:
        """Take a loaded third-party plugin out: its entries, its hooks."""
        building._discard(name)
        for registry in self._registries.values():
            registry._discard(name)
        self._pm.unregister(name=name)
        self._break(name, reason)
        for registry in self._registries.values():
            registry.unavailable = self._unavailable_note()

    def _unavailable_note(self) -> str:
        return "; ".join(f"{u.name} ({u.status}: {u.reason})" for u in self.unavailable())

    @property
    def synthesizers(self) -> Registry[Synthesizer]:
        return self._registry("safes_register_synthesizers", "synthesizer", Synthesizer)

    @property
    def fairness_transformers(self) -> Registry[FairnessTransformer]:
        return self._registry(
            "safes_register_fairness_transformers", "fairness transformer", FairnessTransformer
        )

    @property
    def metrics(self) -> Registry[Metric]:
        return self._registry("safes_register_metrics", "metric", Metric)

    # -- lifecycle hooks -----------------------------------------------------------------------

    def run_started(self, run: RunInfo) -> None:
        self._pm.hook.safes_run_started(run=run)

    def stage_started(self, run: RunInfo, stage: str) -> None:
        self._pm.hook.safes_stage_started(run=run, stage=stage)

    def stage_finished(self, run: RunInfo, stage: str, seconds: float) -> None:
        self._pm.hook.safes_stage_finished(run=run, stage=stage, seconds=seconds)

    def privacy_spent(self, run: RunInfo, entry: LedgerEntry, epsilon: float, delta: float) -> None:
        self._pm.hook.safes_privacy_spent(run=run, entry=entry, epsilon=epsilon, delta=delta)

    def progress(
        self, run: RunInfo, stage: str, step: int, total: int | None, message: str
    ) -> None:
        self._pm.hook.safes_progress(run=run, stage=stage, step=step, total=total, message=message)

    def run_finished(self, run: RunInfo, release: Release | StreamedRelease) -> None:
        self._pm.hook.safes_run_finished(run=run, release=release)


_lock = threading.Lock()
_manager: PluginManager | None = None


def get_plugin_manager() -> PluginManager:
    """The process-wide plugin manager (built-ins plus entry points), built on first use."""
    global _manager
    with _lock:
        if _manager is None:
            _manager = PluginManager()
        return _manager


def reset_plugin_manager() -> None:
    """Forget the process-wide manager (tests; after installing a distribution at run time)."""
    global _manager
    with _lock:
        _manager = None


def register_plugin(plugin: object, *, name: str | None = None) -> str:
    """Register a plugin object with the process-wide manager (third-party code, tests)."""
    return get_plugin_manager().register(plugin, name=name)


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with `register_plugin`."""
    get_plugin_manager().unregister(name)


def synthesizer(name: str, **params: Any) -> Synthesizer:
    """A configured synthesizer, e.g. `synthesizer("mst", epsilon=1.0, delta=1e-9)`."""
    return get_plugin_manager().synthesizers.create(name, **params)


def fairness_transformer(name: str, **params: Any) -> FairnessTransformer:
    """A configured fairness transformer, e.g. `fairness_transformer("tot", eta=0.025)`."""
    return get_plugin_manager().fairness_transformers.create(name, **params)


def metric(name: str, **params: Any) -> Metric:
    """A configured metric."""
    return get_plugin_manager().metrics.create(name, **params)
