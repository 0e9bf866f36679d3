"""The defaults of every public signature (era, era.torch, era.jax, the CLI) are libera's own
(era_*_params_init, read through era._era.*_defaults()): none is repeated as a literal."""

import importlib
import inspect
import math

import pytest

import era

CONTINUOUS = era._era.continuous_defaults()
DISCRETE = era._era.discrete_defaults()
LLM = era._era.llm_defaults()
MODE_NAMES = {number: name for name, number in era.discrete.MODES.items()}

# parameter name -> libera's default
EXPECTED = {
    "residual": CONTINUOUS["residual"],
    "log_std_min": CONTINUOUS["log_std_min"],
    "log_std_max": CONTINUOUS["log_std_max"],
    "tau": DISCRETE["tau"],
    "mode": MODE_NAMES[DISCRETE["mode"]],
    "omega_low": LLM["omega_low"],
    "omega_high": LLM["omega_high"],
    "k": LLM["k"],
    "top_fraction": LLM["top_fraction"],
    "scale_advantages": LLM["scale_advantages"],
}


def test_target_entropy_has_no_default_in_libera():
    assert math.isnan(CONTINUOUS["target_entropy"]) and math.isnan(DISCRETE["target_entropy"])


def test_module_constants_are_libera_defaults():
    assert (era.continuous.LOG_STD_MIN, era.continuous.LOG_STD_MAX, era.continuous.RESIDUAL) == (
        CONTINUOUS["log_std_min"], CONTINUOUS["log_std_max"], CONTINUOUS["residual"])
    assert era.discrete.TAU == DISCRETE["tau"] and era.discrete.MODES[era.discrete.DEFAULT_MODE] == DISCRETE["mode"]
    assert (era.llm.OMEGA_LOW, era.llm.OMEGA_HIGH, era.llm.K, era.llm.TOP_FRACTION, era.llm.SCALE_ADVANTAGES) == (
        LLM["omega_low"], LLM["omega_high"], LLM["k"], LLM["top_fraction"], LLM["scale_advantages"])


def signatures(module):
    """(qualified name, inspect.Signature) of the module's public functions and classes."""
    for name in sorted(getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]):
        member = getattr(module, name)
        target = member.__init__ if inspect.isclass(member) else member
        if not callable(target):
            continue
        try:
            yield f"{module.__name__}.{name}", inspect.signature(target)
        except (TypeError, ValueError):
            continue


@pytest.mark.parametrize("module_name", ["era", "era.torch", "era.jax"])
def test_signature_defaults_are_libera_defaults(module_name):
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        pytest.skip(f"{module_name}: {error}")
    checked = 0
    for qualified, signature in signatures(module):
        for parameter in signature.parameters.values():
            if parameter.name in EXPECTED and parameter.default is not inspect.Parameter.empty:
                assert parameter.default == EXPECTED[parameter.name], (qualified, parameter.name, parameter.default)
                checked += 1
    assert checked > 0


def test_cli_defaults_are_libera_defaults():
    from era import cli

    root = cli.parser()
    parsers = [root] + [sub for action in root._actions if isinstance(getattr(action, "choices", None), dict)
                        for sub in action.choices.values()]
    defaults = {action.dest: action.default for p in parsers for action in p._actions}
    for name in ("tau", "log_std_min", "log_std_max", "residual", "mode"):
        if name in defaults and defaults[name] is not None:
            assert defaults[name] == EXPECTED[name], (name, defaults[name])
    assert "tau" in defaults and "log_std_min" in defaults
