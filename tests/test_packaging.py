"""What the package ships (LICENSE, py.typed, the example configs) and `scalarize init`, whose
starter configs come from the schema and load with the command they are for; one config serves
several commands (each ignores the others' sections)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from scalarize.cli.main import main
from scalarize.cli.reference import section_names
from scalarize.cli.starter import COMMANDS, example_for, schema_of, shipped_configs, starter
from scalarize.experiments.loading import load_experiment_config
from scalarize.train.config import ConfigError, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_license_is_bsd_3_clause_and_named_in_the_metadata():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License")
    assert "scalarize developers" in text and "Neither the name of the copyright holder" in text
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'license = "BSD-3-Clause"' in pyproject and 'license-files = ["LICENSE"]' in pyproject


def test_the_package_is_typed_and_its_configs_are_the_repositorys():
    assert (ROOT / "src/scalarize/py.typed").is_file()
    shipped = sorted(item.name for item in shipped_configs().iterdir() if item.name.endswith(".yaml"))
    assert shipped == sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert (ROOT / "src/scalarize/configs").resolve() == (ROOT / "configs").resolve()  # one copy


@pytest.mark.slow
def test_the_wheel_ships_license_py_typed_and_configs(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("scalarize-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "scalarize/py.typed" in names
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert {f"scalarize/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")} <= set(names)


def test_examples_are_found_by_benchmark_and_command():
    assert example_for("multimnist", "train")[0] == "multimnist.yaml"
    assert example_for("multimnist", "sweep")[0] == "multimnist-sweep.yaml"
    assert example_for("multimnist", "study")[0] == "study.yaml"
    assert example_for("digits", "pbt") is None


def _keys(model, prefix=""):
    """Every key of a schema, sections that default to a section followed into."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        yield f"{prefix}{name}"
        default = None if field.is_required() else field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            yield from _keys(type(default), f"{prefix}{name}.")


def _written(data, key):
    for part in key.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


@pytest.mark.parametrize("command", COMMANDS)
def test_a_starter_has_every_key_commented_and_loads_with_its_command(tmp_path, command):
    text = starter(command)
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert all("  # " in line for line in lines)  # every key carries its comment
    data = yaml.safe_load(text)
    missing = [key for key in _keys(schema_of(command)) if not _written(data, key)]
    assert not missing
    path = tmp_path / "c.yaml"
    path.write_text(text)
    config = load_experiment_config(path, [], schema_of(command), section=None if command == "train" else command)
    assert isinstance(config, TrainConfig)


def test_a_starter_for_a_benchmark_starts_from_its_shipped_example():
    data = yaml.safe_load(starter("sweep", "multimnist"))
    example = yaml.safe_load((ROOT / "configs/multimnist-sweep.yaml").read_text())
    assert data["benchmark"]["name"] == "multimnist"
    assert data["sweep"]["step"] == example["sweep"]["step"] and data["epochs"] == example["epochs"]
    assert yaml.safe_load(starter("train", "digits"))["benchmark"]["name"] == "digits"


def test_init_writes_a_file_and_refuses_bad_input(tmp_path, capsys):
    out = tmp_path / "sweep.yaml"
    assert main(["init", "--command", "sweep", "--benchmark", "synthetic", "-o", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["benchmark"]["name"] == "synthetic"
    assert main(["init", "-o", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert main(["init", "--benchmark", "nope"]) == 2
    assert "--benchmark: unknown benchmark 'nope'; allowed:" in capsys.readouterr().err
    assert main(["init", "--command", "fly"]) == 2
    assert "--command: unknown command 'fly'; allowed: train, sweep" in capsys.readouterr().err
    assert main(["init"]) == 0
    assert capsys.readouterr().out.startswith("# A starter config for `scalarize train`")


def test_help_points_to_init_and_the_installed_configs(capsys):
    with pytest.raises(SystemExit):
        main(["sweep", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "scalarize init --command sweep" in help_text and "configs/*-sweep.yaml" not in help_text
    assert str(shipped_configs()) in help_text


def test_train_ignores_the_sections_of_other_commands(tmp_path):
    path = tmp_path / "both.yaml"
    path.write_text("name: both\nsweep: {step: 0.5}\npbt: {population: 4}\nstudy: {}\ncompare: {}\n")
    assert load_experiment_config(path, [], TrainConfig).name == "both"
    from scalarize.experiments.sweep import load_sweep_config

    assert load_sweep_config(path).sweep.step == 0.5  # sweep reads its own, ignores pbt:
    with pytest.raises(ConfigError, match="sweep: unknown key"):  # an override is meant: still refused
        load_experiment_config(path, ["sweep.step=0.1"], TrainConfig)


def test_a_command_without_its_section_points_to_init(tmp_path):
    path = tmp_path / "plain.yaml"
    path.write_text("name: plain\n")
    from scalarize.experiments.pbt import load_pbt_config

    with pytest.raises(ConfigError, match="scalarize init --command pbt"):
        load_pbt_config(path)


def test_every_section_init_writes_is_one_config_describes():
    data = yaml.safe_load(starter("study"))
    assert {key for key, value in data.items() if isinstance(value, dict)} <= set(section_names())
