"""Tests of the plugin layer: registries, built-ins, entry points, lookups, failures."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from thirdparty_synth import IndependentMarginals

import safes_framework
from safes_framework import SafesChain, hookimpl
from safes_framework.base import FairnessTransformer, Synthesizer
from safes_framework.errors import (
    ConfigError,
    PluginError,
    PluginUnavailableError,
    UnknownPluginError,
)
from safes_framework.plugins import DEFAULT_PLUGINS, PluginManager
from safes_framework.registry import Registry
from safes_framework.testing import toy_schema, toy_table


class _Plugin:
    @hookimpl
    def safes_register_synthesizers(self, register: Registry) -> None:
        register.add("independent", IndependentMarginals, description="test synthesizer")


def test_builtins_are_registered_from_the_tuple() -> None:
    pm = PluginManager(load_entrypoints=False)
    assert set(DEFAULT_PLUGINS) <= set(pm.plugin_names())
    entry = pm.synthesizers.entry("mst")
    assert entry.plugin == "safes_plugins.mst"
    assert pm.origin(entry.plugin) == "built-in"


def test_lookup_returns_configured_instance() -> None:
    synth = safes_framework.synthesizer("mst", epsilon=0.5, delta=1e-6)
    assert isinstance(synth, Synthesizer)
    assert (synth.epsilon, synth.delta) == (0.5, 1e-6)


def test_unknown_name_lists_installed() -> None:
    with pytest.raises(UnknownPluginError, match="installed synthesizers: .*mst"):
        safes_framework.synthesizer("nope", epsilon=1, delta=1e-6)
    with pytest.raises(UnknownPluginError, match="no metric named 'nope'"):
        safes_framework.metric("nope")


def test_unknown_parameter_lists_accepted_ones() -> None:
    with pytest.raises(ConfigError, match="accepted parameters: .*epsilon"):
        safes_framework.synthesizer("mst", epsilon=1, delta=1e-6, bogus=3)


def test_runtime_registration_and_duplicate_names() -> None:
    pm = PluginManager(load_entrypoints=False)
    pm.register(_Plugin(), name="third")
    assert pm.synthesizers.entry("independent").plugin == "third"

    class _Dup:
        @hookimpl
        def safes_register_synthesizers(self, register: Registry) -> None:
            register.add("mst", IndependentMarginals)

    pm.register(_Dup(), name="dup")
    with pytest.raises(
        PluginError,
        match="'mst' is registered twice: by plugin 'safes_plugins.mst' and by plugin 'dup'",
    ):
        pm.synthesizers  # noqa: B018


@pytest.mark.parametrize(
    ("name", "factory", "message"),
    [
        ("Bad Name", IndependentMarginals, "must be lower-case"),
        ("wrongkind", FairnessTransformer, "does not subclass"),
        ("abstract", Synthesizer, "abstract methods"),
    ],
)
def test_registry_validates(name: str, factory: type, message: str) -> None:
    reg: Registry[Synthesizer] = Registry("synthesizer", Synthesizer)
    if factory is FairnessTransformer:

        class NotASynth(FairnessTransformer):  # concrete but wrong interface
            fit = transform = lambda *a, **k: None  # type: ignore[assignment]

        factory = NotASynth
    with pytest.raises(PluginError, match=message):
        reg.add(name, factory)


def _fake_distribution(tmp_path: Path, module: str, source: str, ep_value: str) -> None:
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
    dist = tmp_path / f"{module}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[safes_framework]\n{module} = {ep_value}\n")


def test_third_party_plugin_through_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "safes_thirdparty",
        """
        from safes_framework import SafesChain, hookimpl
        from safes_framework.registry import Registry

        @hookimpl
        def safes_register_synthesizers(register: Registry) -> None:
            from thirdparty_synth import IndependentMarginals
            register.add("independent", IndependentMarginals)
        """,
        "safes_thirdparty",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager()
    entry = pm.synthesizers.entry("independent")
    assert entry.plugin == "safes_thirdparty"
    assert pm.origin("safes_thirdparty") == "entry point (safes_thirdparty)"
    # ...and runs in a chain like any built-in.
    synth = pm.synthesizers.create("independent", epsilon=1.0, delta=1e-6)
    release = SafesChain(synth, seed=0, plugin_manager=pm).run(toy_table(300), toy_schema())
    assert len(release.data) == 300 and release.privacy.epsilon <= 1.0 + 1e-9
    sys.modules.pop("safes_thirdparty", None)


def test_broken_entry_point_names_plugin_and_distribution(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path, "safes_broken", "raise ImportError('no numpy here')\n", "safes_broken"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(
        PluginError, match="plugin 'safes_broken'.*distribution 'safes_broken'.*no numpy here"
    ):
        PluginManager()
    sys.modules.pop("safes_broken", None)


def test_broken_builtin_names_module() -> None:
    with pytest.raises(PluginError, match="built-in plugin 'safes_plugins.nothere'"):
        PluginManager(load_entrypoints=False, builtins=("safes_plugins.nothere",))


class _NeedsAnExtra(IndependentMarginals):
    """A synthesizer whose optional dependency is missing."""

    @staticmethod
    def unavailable_reason() -> str | None:
        return "needs frobnicate; install with pip install 'thing[extra]'"


def test_unavailable_component_is_listed_but_creating_it_says_what_to_install() -> None:
    registry: Registry[Synthesizer] = Registry("synthesizer", Synthesizer)
    registry.add("needy", _NeedsAnExtra)
    registry.add("plain", IndependentMarginals)
    assert registry.names() == ["needy", "plain"]
    assert not registry.entry("needy").available
    assert "pip install 'thing[extra]'" in (registry.entry("needy").unavailable_reason() or "")
    plain = registry.entry("plain")
    assert plain.available and plain.unavailable_reason() is None
    with pytest.raises(PluginUnavailableError, match=r"'needy' is unavailable: .*thing\[extra\]"):
        registry.create("needy", epsilon=1.0, delta=1e-6)
    assert isinstance(registry.create("plain", epsilon=1.0, delta=1e-6), IndependentMarginals)
