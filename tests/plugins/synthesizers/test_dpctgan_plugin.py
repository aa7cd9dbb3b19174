"""Tests of the DP-CTGAN plugin: contract, accounting, determinism, and life without torch."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
from safes_plugins.synthesizers import dpctgan

import safes_framework
from safes_framework import SafesChain
from safes_framework.access import InMemorySource
from safes_framework.base import StageContext
from safes_framework.cli import main
from safes_framework.errors import ConfigError, PluginUnavailableError, SafesError
from safes_framework.plugins import PluginManager
from safes_framework.primitives import PrivateTable
from safes_framework.privacy import RDPAccountant
from safes_framework.privacy.noise import SeededNoise
from safes_framework.testing import check_synthesizer, toy_schema, toy_table

HAVE_DPSGD = all(importlib.util.find_spec(m) is not None for m in ("torch", "opacus"))
needs_dpsgd = pytest.mark.skipif(
    not HAVE_DPSGD, reason="needs torch and opacus: pip install 'safes-framework[dpsgd]'"
)

#: Settings that train on the toy table in about a second.
TINY = {
    "steps": 8, "batch_size": 250, "generator_dims": (32,), "discriminator_dims": (32,),
    "embedding_dim": 16, "generator_steps": 2, "generator_batch": 128,
}


def _fit(epsilon: float = 1.0, delta: float = 1e-6, seed: int = 0, n: int = 1000, **kw: object):
    schema = toy_schema()
    codes = schema.encode_array(toy_table(n))
    acc = RDPAccountant(budget=(epsilon, delta))
    table = PrivateTable(
        InMemorySource(codes, schema.sizes), schema, acc, SeededNoise(np.random.SeedSequence(seed))
    )
    synth = dpctgan.DPCTGAN(epsilon, delta, **{**TINY, **kw})
    synth.fit(table, StageContext("synthesizer"))
    return synth, acc


@needs_dpsgd
def test_contract_checks_pass() -> None:
    check_synthesizer(lambda **kw: safes_framework.synthesizer("dpctgan", **kw, **TINY))


@needs_dpsgd
@pytest.mark.parametrize("epsilon", [0.3, 1.0, 10.0])
def test_budget_is_spent_exactly(epsilon: float) -> None:
    _, acc = _fit(epsilon)
    assert acc.epsilon(1e-6) <= epsilon
    assert acc.epsilon(1e-6) == pytest.approx(epsilon, rel=1e-6)


@needs_dpsgd
def test_ledger_reads_one_way_marginals_then_the_declared_dp_sgd_steps() -> None:
    synth, acc = _fit()
    first, second = acc.entries
    assert first.label == "one-way marginals" and first.event["type"] == "Gaussian"
    assert first.count == len(toy_schema().columns)
    assert first.event["noise_multiplier"] == pytest.approx(synth.plan_["marginal_sigma"])
    assert second.event == {
        "type": "SubsampledGaussian",
        "sampling_rate": synth.plan_["sampling_rate"],
        "noise_multiplier": synth.plan_["noise_multiplier"],
    }
    assert second.count == synth.plan_["steps"]
    # Expected batch 250 of a noisy n close to 1000.
    assert 0.2 < synth.plan_["sampling_rate"] < 0.3
    assert synth.plan_["steps"] == 8
    assert synth.plan_["fake_batch"] == 250  # q x noisy n: public, not the batch drawn


@needs_dpsgd
def test_marginal_share_moves_budget_between_marginals_and_dp_sgd() -> None:
    small, _ = _fit(marginal_share=0.05)
    large, _ = _fit(marginal_share=0.5)
    assert large.plan_["marginal_sigma"] < small.plan_["marginal_sigma"]
    assert large.plan_["noise_multiplier"] > small.plan_["noise_multiplier"]


@needs_dpsgd
def test_same_seed_same_table_and_other_seed_other_table() -> None:
    out = [_fit(seed=s)[0].sample(300, np.random.default_rng(7)) for s in (0, 0, 1)]
    assert np.array_equal(out[0], out[1])
    assert not np.array_equal(out[0], out[2])


@needs_dpsgd
def test_torch_global_state_is_left_alone() -> None:
    import torch

    state = torch.get_rng_state()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    synth, _ = _fit(threads=1)
    synth.sample(100, np.random.default_rng(0))
    assert torch.equal(state, torch.get_rng_state())
    assert torch.get_num_threads() == threads
    assert torch.are_deterministic_algorithms_enabled() == deterministic


@needs_dpsgd
def test_row_estimate_is_the_noisy_total() -> None:
    synth, _ = _fit(epsilon=10.0, n=2000)
    assert synth.estimates_rows
    assert synth.estimated_rows() == pytest.approx(2000, rel=0.05)
    assert synth.estimated_rows() != 2000


@needs_dpsgd
def test_release_is_in_the_schema_domain_and_learns_the_label_rate() -> None:
    schema, df = toy_schema(), toy_table(3000, seed=1)
    synth = safes_framework.synthesizer("dpctgan", epsilon=10.0, delta=1e-6, **TINY)
    pm = PluginManager(load_entrypoints=False)
    release = SafesChain(synth, seed=0, plugin_manager=pm).run(df, schema)
    schema.validate(release.data)
    for col in df.columns:
        real = df[col].value_counts(normalize=True).sort_index()
        fake = release.data[col].value_counts(normalize=True).reindex(real.index, fill_value=0)
        assert 0.5 * np.abs(real - fake).sum() < 0.1, col


@needs_dpsgd
def test_sample_before_fit_raises() -> None:
    synth = dpctgan.DPCTGAN(1.0, 1e-6)
    with pytest.raises(SafesError, match="fit"):
        synth.sample(10, np.random.default_rng(0))
    with pytest.raises(SafesError, match="fit"):
        synth.estimated_rows()


@needs_dpsgd
@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("steps", 0), ("batch_size", 0), ("batch_size", 2.5), ("marginal_share", 1.0),
        ("marginal_share", 0), ("max_grad_norm", -1.0), ("generator_dims", []),
        ("discriminator_dims", [16, 0]), ("marginal_weight", -1.0), ("threads", 0),
        ("generator_lr", float("nan")),
    ],
)
def test_bad_settings_name_the_parameter(param: str, value: object) -> None:
    with pytest.raises(ConfigError, match=f"dpctgan: {param}"):
        dpctgan.DPCTGAN(1.0, 1e-6, **{param: value})


@needs_dpsgd
def test_sweep_config_accepts_dpctgan(tmp_path) -> None:
    config = tmp_path / "sweep.toml"
    config.write_text('[synthesizer]\nname = "dpctgan"\nsteps = 5\n')
    assert main(["validate", str(config)]) == 0


# -- without the dpsgd extra --------------------------------------------------------------------


def test_without_torch_the_plugin_is_listed_as_unavailable_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(dpctgan, "_missing_dependencies", lambda: ["torch", "opacus"])
    pm = PluginManager(load_entrypoints=False)
    entry = pm.synthesizers.entry("dpctgan")
    assert not entry.available
    assert dpctgan.INSTALL in (entry.unavailable_reason() or "")
    with pytest.raises(PluginUnavailableError, match=r"safes-framework\[dpsgd\]"):
        pm.synthesizers.create("dpctgan", epsilon=1.0, delta=1e-6)
    with pytest.raises(PluginUnavailableError, match="torch and opacus"):
        dpctgan.DPCTGAN(1.0, 1e-6)
    monkeypatch.setattr(safes_framework.plugins, "_manager", pm)
    assert main(["plugins", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "dpctgan")
    assert row["available"] is False and dpctgan.INSTALL in row["unavailable_reason"]
    assert main(["plugins"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if " dpctgan " in x)
    assert "[unavailable: needs torch and opacus; install with" in line


def test_plugin_module_imports_and_registers_when_torch_cannot_be_imported() -> None:
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['opacus'] = None\n"
        "import importlib.util as u; u.find_spec = lambda name, *a: None\n"
        "from safes_framework.plugins import PluginManager\n"
        "e = PluginManager(load_entrypoints=False).synthesizers.entry('dpctgan')\n"
        "print(e.available, e.unavailable_reason())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.startswith("False needs torch and opacus; install with pip install")
