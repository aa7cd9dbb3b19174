"""Tests of the plugin layer: registries, built-ins, entry points, lookups, failures."""

from __future__ import annotations

import sys
import textwrap
import warnings
from collections.abc import Iterator
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
    PluginWarning,
    UnknownPluginError,
)
from safes_framework.plugins import (
    DEFAULT_PLUGINS,
    DISABLE_ENV,
    PluginManager,
    reset_plugin_manager,
)
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
    assert entry.plugin == "safes_plugins.synthesizers.mst"
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
        match="'mst' is registered twice: by plugin 'safes_plugins.synthesizers.mst' and by "
        "plugin 'dup'",
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
    assert len(release.data) == round(synth.estimated_rows()) and release.privacy.epsilon <= 1.0
    sys.modules.pop("safes_thirdparty", None)


@pytest.fixture
def fresh_manager(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process-wide manager rebuilt for this test (and again after it)."""
    monkeypatch.delenv(DISABLE_ENV, raising=False)
    reset_plugin_manager()
    yield
    reset_plugin_manager()


def _broken_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_distribution(
        tmp_path, "safes_broken", "raise ImportError('no numpy here')\n", "safes_broken"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "safes_broken", raising=False)


def test_broken_entry_point_disables_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_manager: None
) -> None:
    _broken_distribution(tmp_path, monkeypatch)
    with pytest.warns(
        PluginWarning, match="plugin 'safes_broken'.*distribution 'safes_broken'.*no numpy here"
    ):
        synth = safes_framework.synthesizer("mst", epsilon=1.0, delta=1e-6)  # the Python API
    release = SafesChain(synth, seed=0).run(toy_table(200), toy_schema())
    assert release.privacy.epsilon <= 1.0
    [broken] = safes_framework.get_plugin_manager().unavailable()
    assert (broken.name, broken.status) == ("safes_broken", "broken")
    assert broken.origin == "entry point (safes_broken)" and "no numpy here" in broken.reason
    with pytest.raises(UnknownPluginError, match="not in use: safes_broken .broken: .*numpy"):
        safes_framework.synthesizer("nope", epsilon=1.0, delta=1e-6)


def test_plugin_failing_in_its_registration_hook_is_disabled_with_its_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "safes_halfway",
        """
        from safes_framework import hookimpl
        from thirdparty_synth import IndependentMarginals

        @hookimpl
        def safes_register_synthesizers(register):
            register.add("halfway", IndependentMarginals)
            raise RuntimeError("config file missing")

        @hookimpl
        def safes_register_metrics(register):
            raise AssertionError("never called: the plugin is out by then")
        """,
        "safes_halfway",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager()
    with pytest.warns(PluginWarning, match="'safes_halfway'.*config file missing"):
        names = pm.synthesizers.names()
    assert "halfway" not in names and "mst" in names
    assert "mean_outcome_difference" in pm.metrics.names()
    assert [u.name for u in pm.unavailable()] == ["safes_halfway"]
    assert "safes_halfway" not in pm.plugin_names()
    sys.modules.pop("safes_halfway", None)


def test_entry_point_with_a_malformed_hook_is_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "safes_malformed",
        """
        from safes_framework import hookimpl

        @hookimpl
        def safes_register_synthesizers(registry):  # the argument is called register
            pass
        """,
        "safes_malformed",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.warns(PluginWarning, match="'safes_malformed'.*registry"):
        pm = PluginManager()
    assert "mst" in pm.synthesizers and "safes_malformed" not in pm.plugin_names()
    sys.modules.pop("safes_malformed", None)


def test_entry_point_taking_a_builtin_name_is_disabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_distribution(
        tmp_path,
        "safes_squatter",
        """
        from safes_framework import hookimpl
        from thirdparty_synth import IndependentMarginals

        @hookimpl
        def safes_register_synthesizers(register):
            register.add("mst", IndependentMarginals)
        """,
        "safes_squatter",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = PluginManager()
    with pytest.warns(PluginWarning, match="'mst' is registered twice"):
        assert pm.synthesizers.entry("mst").plugin == "safes_plugins.synthesizers.mst"
    sys.modules.pop("safes_squatter", None)


def test_disabled_plugin_is_never_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_manager: None
) -> None:
    marker = tmp_path / "imported"
    _fake_distribution(
        tmp_path,
        "safes_noisy",
        f"open({str(marker)!r}, 'w').close()\n",
        "safes_noisy",
    )
    _broken_distribution(tmp_path, monkeypatch)
    monkeypatch.setenv(DISABLE_ENV, "safes_noisy, safes_broken")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a disabled plugin gives no warning
        pm = safes_framework.get_plugin_manager()
        assert "mst" in pm.synthesizers
    assert not marker.exists()
    assert [(u.name, u.status) for u in pm.unavailable()] == [
        ("safes_broken", "disabled"),
        ("safes_noisy", "disabled"),
    ]


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
