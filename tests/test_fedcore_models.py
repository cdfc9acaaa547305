"""Model registry, entry points and parameter <-> array mapping (fedcore.models/params)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fedcore import models
from fedcore.entrypoints import load_entrypoint
from fedcore.models import UnknownModelError, build_model, model_names, register_model
from fedcore.params import get_parameters, prunable_names, set_parameters


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict:
    """A private copy of the registry so registrations do not leak between tests."""
    copy = dict(models._REGISTRY)
    monkeypatch.setattr(models, "_REGISTRY", copy)
    return copy


def _tiny() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 2))


# ---------------------------------------------------------------- entry points


def test_load_entrypoint_resolves_dotted_attribute() -> None:
    assert load_entrypoint("os.path:join") is __import__("os").path.join
    ordered_dict = __import__("collections").OrderedDict
    assert load_entrypoint("collections:OrderedDict.fromkeys") == ordered_dict.fromkeys


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("os.path.join", "exactly one ':'"),
        ("os:path:join", "exactly one ':'"),
        (":join", "module ''"),
        ("os.path:", "attribute ''"),
        ("os path:join", "not a dotted Python name"),
        ("no_such_module_fedprune:f", "module 'no_such_module_fedprune' not found"),
        ("os.no_such_submodule_fedprune:f", "not found"),
        ("os:no_such_attribute", "'no_such_attribute' not found in 'os'"),
        ("os:sep", "is not callable"),
    ],
)
def test_load_entrypoint_errors_quote_the_spec(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match="entry point") as info:
        load_entrypoint(spec)
    assert message in str(info.value)
    assert repr(spec) in str(info.value)


def test_load_entrypoint_keeps_import_errors_inside_the_plugin(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fedprune_broken_plugin.py").write_text("import fedprune_missing_dep\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError, match="fedprune_missing_dep"):
        load_entrypoint("fedprune_broken_plugin:build")


# ---------------------------------------------------------------- registry


def test_builtin_names() -> None:
    assert {"mlp", "cnn"} <= set(model_names())


def test_register_refuses_replacement(registry: dict) -> None:
    register_model("tiny", _tiny)
    assert "tiny" in model_names()
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", _tiny)
    with pytest.raises(ValueError, match="'mlp' is already registered"):
        register_model("mlp", _tiny)
    assert registry["mlp"] is models._mlp


@pytest.mark.parametrize("name", ["", "a:b", None])
def test_register_rejects_bad_names(registry: dict, name) -> None:
    with pytest.raises(ValueError, match="name"):
        register_model(name, _tiny)


def test_register_rejects_non_callable(registry: dict) -> None:
    with pytest.raises(ValueError, match="not callable"):
        register_model("x", 3)  # type: ignore[arg-type]


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(UnknownModelError, match="unknown model 'nope'.*cnn.*mlp"):
        build_model("nope")
    assert issubclass(UnknownModelError, ValueError)


def test_build_from_registered_and_entrypoint(registry: dict) -> None:
    register_model("tiny", _tiny)
    assert isinstance(build_model("tiny"), nn.Sequential)
    assert isinstance(build_model("torch.nn:Identity"), nn.Identity)
    with pytest.raises(ValueError, match="returned OrderedDict, not nn.Module"):
        build_model("collections:OrderedDict")


def test_build_rejects_non_float32_models(registry: dict) -> None:
    register_model("double", lambda: nn.Linear(2, 2).double())
    with pytest.raises(ValueError, match="'weight' is torch.float64"):
        build_model("double")


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_build_rejects_bad_seed(seed) -> None:
    with pytest.raises(ValueError, match="seed"):
        build_model("mlp", seed=seed)


def test_build_is_manual_seed_equivalent_and_leaves_global_rng_alone() -> None:
    before = torch.random.get_rng_state()
    built = get_parameters(build_model("mlp", seed=0))
    assert torch.equal(torch.random.get_rng_state(), before)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        reference = get_parameters(models._mlp())
    assert list(built) == list(reference)
    assert all(np.array_equal(built[k], reference[k]) for k in built)
    other = get_parameters(build_model("mlp", seed=1))
    assert not np.array_equal(other["fc1.weight"], built["fc1.weight"])


def test_builtin_shapes_and_parameter_counts() -> None:
    mlp, cnn = build_model("mlp"), build_model("cnn")
    assert sum(p.numel() for p in mlp.parameters()) == 85_002
    assert 5_000 < sum(p.numel() for p in cnn.parameters()) < 20_000
    x = torch.zeros(5, 64)
    assert mlp(x).shape == cnn(x).shape == (5, 10)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in cnn.modules())


# ---------------------------------------------------------------- parameters


def _with_batchnorm() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))


def test_get_parameters_are_float32_copies_in_state_dict_order() -> None:
    model = _with_batchnorm()
    params = get_parameters(model)
    expected = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    assert list(params) == expected
    assert all(a.dtype == np.float32 for a in params.values())
    params["0.weight"][:] = 7.0
    assert not torch.any(model[0].weight == 7.0)


def test_set_parameters_round_trip() -> None:
    source, target = build_model("cnn", seed=1), build_model("cnn", seed=2)
    set_parameters(target, get_parameters(source))
    x = torch.rand(4, 64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(source(x), target(x))


def _shifted(params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v + 1 for k, v in params.items()}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda p: p.pop("2.bias"), r"missing tensor\(s\) \['2.bias'\]"),
        (lambda p: p.update(extra=np.zeros(1)), r"unexpected tensor\(s\) \['extra'\]"),
        (lambda p: p.update({"0.weight": np.zeros((4, 3))}), "'0.weight' has shape"),
        (lambda p: p["1.running_mean"].__setitem__(0, np.nan), "'1.running_mean' contains NaN"),
        (lambda p: p.update({"0.bias": np.array(["a"] * 3)}), "'0.bias' has non-numeric"),
    ],
)
def test_set_parameters_names_the_bad_tensor_and_changes_nothing(mutate, message) -> None:
    model = _with_batchnorm()
    before = get_parameters(model)
    params = _shifted(before)
    mutate(params)
    with pytest.raises(ValueError, match=message):
        set_parameters(model, params)
    after = get_parameters(model)
    assert all(np.array_equal(before[k], after[k]) for k in before)


def test_prunable_names_are_weights_with_two_or_more_dims() -> None:
    assert prunable_names(build_model("mlp")) == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert prunable_names(build_model("cnn")) == ["conv1.weight", "conv2.weight", "fc.weight"]
    model = _with_batchnorm()
    assert prunable_names(model) == ["0.weight", "2.weight"]
    assert prunable_names(get_parameters(model)) == prunable_names(model)
    with pytest.raises(ValueError, match="model_or_params"):
        prunable_names([1, 2])  # type: ignore[arg-type]
