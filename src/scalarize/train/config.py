"""The training configuration: one validated object, loaded from YAML, overridable with key=value.

Unknown keys, wrong types and out-of-range values raise :class:`ConfigError` with one line that
names the key and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, overload

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from scalarize.data.augment import Augmentation
from scalarize.errors import ScalarizeError
from scalarize.store.tracking import TrackingConfig

#: The longest run name (UTF-8 bytes): with a member's suffix it stays under a file name's 255.
MAX_NAME_BYTES = 100


class ConfigError(ScalarizeError):
    """A configuration problem, phrased for a person: ``key: what is wrong; what is allowed``."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_not_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        """``epochs: true`` is a mistake, not 1: a number field refuses a boolean, and so does a
        list of numbers (``method.weights: [true, false]``, ``sweep.seeds: [true]``); an integer
        past 64 bits (``epochs`` of 401 digits) is refused too, before anything overflows."""
        if info.field_name not in cls.model_fields:
            return value
        kinds = _scalar_kinds(cls.model_fields[info.field_name].annotation)
        if bool in kinds or not kinds & {int, float}:
            return value
        for item in _scalars(value):
            if isinstance(item, bool):
                raise ValueError(f"expected a number, got {str(item).lower()}")
            if isinstance(item, int) and abs(item) > MAX_INTEGER:
                raise ValueError(f"a {len(str(abs(item)))}-digit number; allowed: at most {MAX_INTEGER:,} in size")
        return value


#: The largest integer a config holds (64 bits): beyond, arithmetic on it overflows.
MAX_INTEGER = 2**63 - 1


def _scalar_kinds(annotation: Any) -> set[Any]:
    """The scalar types an annotation holds, through lists and unions (``list[float] | None``:
    ``{float, NoneType}``); a mapping's values are options of any type, not looked into."""
    if typing.get_origin(annotation) is dict:
        return set()
    arguments = typing.get_args(annotation)
    if not arguments:
        return {annotation}
    return set().union(*(_scalar_kinds(argument) for argument in arguments))


def _scalars(value: Any) -> list[Any]:
    """``value`` itself, or the items of a (nested) list of it."""
    if not isinstance(value, (list, tuple)):
        return [value]
    return [item for part in value for item in _scalars(part)]


class TaskOverride(Strict):
    """Another kind (loss and metrics) for a benchmark's task, by name or import path."""

    kind: str = Field(description="a task kind: multiclass, binary, regression... or 'package.module:Kind'")
    options: dict[str, Any] = Field(default_factory=dict)
    primary_metric: str | None = None
    higher_is_better: bool | None = None


class BenchmarkConfig(Strict):
    name: str = "multimnist"
    target: str | None = Field(default=None, description="'package.module:build' returning a Benchmark")
    options: dict[str, Any] = Field(default_factory=dict)
    objectives: list[str] | None = Field(default=None, description="train on these tasks/domains only")
    tasks: dict[str, TaskOverride] = Field(default_factory=dict, description="replace tasks' kinds by name")


class HeadConfig(Strict):
    name: Literal["linear", "mlp"] = "linear"
    hidden: int = Field(default=256, ge=1)
    layers: int = Field(default=1, ge=1, le=16)


class ModelConfig(Strict):
    family: str = "mlp"
    target: str | None = Field(default=None, description="'package.module:build' (replaces family)")
    width: float = Field(default=1.0, gt=0)
    depth: int = Field(default=2, ge=0, le=1000)
    options: dict[str, Any] = Field(default_factory=dict, description="keyword options of the family or builder")
    head: HeadConfig = Field(default_factory=HeadConfig)

    @property
    def builder(self) -> str:
        """What builds the model: the import path if given, else the family."""
        return self.target or self.family


class MethodConfig(Strict):
    name: str = "scalarization"
    weights: list[float] | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class OptimizerConfig(Strict):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    momentum: float = Field(default=0.9, ge=0, lt=1)
    max_grad_norm: float | None = Field(
        default=None,
        gt=0,
        description="clip the model's gradient to this 2-norm after the method (per member when stacked); "
        "a method's own max_norm (famo, fairgrad, sdmgrad) clips its shared update before this",
    )


class ScheduleConfig(Strict):
    name: Literal["constant", "cosine", "step"] = "constant"
    step_size: int = Field(default=10, ge=1, description="epochs between decays (step)")
    gamma: float = Field(default=0.1, gt=0, le=1)
    warmup_steps: int = Field(default=0, ge=0, description="linear learning-rate warmup over the first steps (0: none)")


class EarlyStoppingConfig(Strict):
    patience: int | None = Field(
        default=None,
        ge=1,
        description="end a run after this many evaluations in a row without a better validation objective",
    )
    min_delta: float = Field(default=0.0, ge=0, description="how much better the objective must get to count")


class AugmentConfig(Strict):
    """Training-time augmentation on the device, per member, from the sampler's own generator
    (scalarize.data.augment)."""

    crop: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="pixels of zero padding before a random crop of the image's size (0: no crop)",
    )
    flip: bool = Field(default=False, description="mirror left to right with probability 1/2")


class DataConfig(Strict):
    """How batches reach the model (where the images live is the benchmark's ``storage`` option)."""

    workers: int | None = Field(
        default=None,
        ge=0,
        le=256,
        description="loader worker processes per stream (default: $SCALARIZE_WORKERS, else 2); 0 reads in the run's process",
    )
    augment: AugmentConfig = Field(default_factory=AugmentConfig)

    def augmentation(self) -> Augmentation | None:
        """The augmentation to apply, or ``None``."""
        augmentation = Augmentation(crop=self.augment.crop, flip=self.augment.flip)
        return augmentation if augmentation.active else None


class TrainConfig(Strict):
    """Everything that defines one training run (and its single-task baselines)."""

    name: str = Field(default="run", description="the run's name (at most 100 bytes: it names files)")
    benchmark: BenchmarkConfig = Field(default_factory=BenchmarkConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    method: MethodConfig = Field(default_factory=MethodConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(default=5, ge=1)
    steps: int | None = Field(default=None, ge=1, description="total steps; overrides epochs")
    eval_every: int | None = Field(default=None, ge=1, description="steps; default one epoch")
    batch_size: int = Field(default=128, ge=1)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    gradient_engine: Literal["auto", "loop", "batched"] = Field(
        default="auto", description="how per-task gradients are computed (scalarize.methods.context)"
    )
    stl: bool = Field(default=True, description="also train single-task baselines for Δm")
    single_task: dict[str, float] | None = Field(
        default=None, description="Δm reference: single-task test values by '<objective>/<metric>' (e.g. published)"
    )
    output: str | None = Field(default=None, description="experiment directory")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        default="fp32",
        description="autocast the forward pass (fp16 with a dynamic loss scale); see train/precision.py",
    )
    channels_last: bool = Field(
        default=False, description="image batches and convolutions in channels-last memory format"
    )
    compile: bool = Field(default=False, description="torch.compile the model's forward pass")
    selection: Literal["objective", "last"] = Field(
        default="objective",
        description="the evaluation a run reports: the best of its own objective on val (its weighted val loss), or the last",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="torch intra-op threads (default: $SCALARIZE_THREADS, else 1 per process on a shared CPU)",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="loader workers and augmentation")
    early_stopping: EarlyStoppingConfig = Field(
        default_factory=EarlyStoppingConfig,
        description="end a run early on its validation objective (status 'stopped')",
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig, description="TensorBoard / MLflow / W&B copies")

    @field_validator("name")
    @classmethod
    def _name_fits_a_file_name(cls, value: str) -> str:
        """A run's name names its folder (``runs/<name>``, with suffixes for members): refused
        when long, here, before the experiment directory is made."""
        if len(value.encode()) > MAX_NAME_BYTES:
            raise ValueError(
                f"{len(value.encode()):,} bytes; allowed: at most {MAX_NAME_BYTES} (it names the run's files)"
            )
        if not value.strip():
            raise ValueError("empty; give the run a name")
        return value

    @model_validator(mode="after")
    def _compiled_models_take_the_loop_engine(self) -> TrainConfig:
        if self.compile and self.gradient_engine == "batched":
            raise ValueError(
                "gradient_engine: batched cannot differentiate through a compiled model (it vmaps the "
                "compiled backward); use loop or auto (auto takes loop under compile: true)"
            )
        return self

    def experiment_dir(self) -> Path:
        return Path(self.output if self.output else Path("experiments") / self.name)

    def fingerprint(self) -> str:
        """Hash of everything that changes the numbers (not the output directory, the name or
        the thread count). Keys added after runs were made are left out while they hold their
        default, so those runs keep their fingerprint."""
        own = set(TrainConfig.model_fields) - {"output", "stl", "name", "threads", "tracking", "single_task"}
        data = self.model_dump(include=own)
        data["data"]["workers"] = None  # how many processes read the batches does not change them
        for path in _ADDED_LATER:
            _drop_default(data, self, path)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


#: Keys added after the first runs were stored (see :meth:`TrainConfig.fingerprint`).
_ADDED_LATER = (
    ("gradient_engine",),
    ("model", "target"),
    ("model", "options"),
    ("model", "head"),
    ("benchmark", "target"),
    ("benchmark", "tasks"),
    ("selection",),
    ("precision",),
    ("channels_last",),
    ("compile",),
    ("data",),
    ("optimizer", "max_grad_norm"),
    ("schedule", "warmup_steps"),
    ("early_stopping",),
)


def _drop_default(data: dict[str, Any], config: BaseModel, path: tuple[str, ...]) -> None:
    owner, node = config, data
    for key in path[:-1]:
        owner, node = getattr(owner, key), node.get(key, {})
    field = type(owner).model_fields[path[-1]]
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        default = default.model_dump()
    if node.get(path[-1], default) == default:
        node.pop(path[-1], None)


def _describe(error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """One line for the first error; ``root`` is the config class (default :class:`TrainConfig`)
    whose fields are listed for an unknown key."""
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"]) or "config"
    kind, message = first["type"], first["msg"]
    if kind == "extra_forbidden":
        parent = first["loc"][:-1]
        return f"{key}: unknown key; allowed: {', '.join(_allowed(parent, root or TrainConfig))}"
    if kind == "value_error":  # our own validators' messages say what they got (and the key)
        message = message.removeprefix("Value error, ")
        return message if key == "config" else f"{key}: {message}"
    got = first.get("input")
    shown = "" if isinstance(got, (dict, list)) else f" (got {got!r})"
    return f"{key}: {message}{shown}"


def _allowed(path: tuple[Any, ...], root: type[BaseModel] | None = None) -> list[str]:
    model: type[BaseModel] = root or TrainConfig
    for part in path:
        if isinstance(part, int):  # an item of a list of sections
            continue
        field = model.model_fields.get(str(part))
        found = _section(getattr(field, "annotation", None))
        if found is None:
            return []
        model = found
    return list(model.model_fields)


def _section(annotation: Any) -> type[BaseModel] | None:
    """The config class inside an annotation (``X``, ``list[X]``, ``X | None``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _section(argument)
        if found is not None:
            return found
    return None


C = TypeVar("C", bound=BaseModel)


@overload
def build_config(data: dict[str, Any], *, source: str | Path | None = None) -> TrainConfig: ...


@overload
def build_config(data: dict[str, Any], schema: type[C], *, source: str | Path | None = None) -> C: ...


def build_config(
    data: dict[str, Any], schema: type[BaseModel] = TrainConfig, *, source: str | Path | None = None
) -> BaseModel:
    """Validates ``data`` as ``schema`` (a training config or one that extends it); ``source``:
    the file ``data`` was read from (see :func:`_describe_by_position`)."""
    try:
        return schema.model_validate(data)
    except ValidationError as error:
        if source is not None and Path(source).suffix.lower() not in YAML_SUFFIXES:
            line = _line_of(Path(source), error.errors()[0]["loc"])
            if line is not None:
                raise ConfigError(_describe_by_position(error, Path(source), line, schema)) from None
        raise ConfigError(_describe(error, schema)) from None


#: The names of config files whose content an error may quote.
YAML_SUFFIXES = (".yaml", ".yml", ".json")


def _describe_by_position(error: ValidationError, path: Path, line: int, root: type[BaseModel]) -> str:
    """The one line for an error in a file not named as a config (``/etc/shadow`` given by
    mistake): where it is, never what the file holds (neither the key nor the value)."""
    first = error.errors()[0]
    where = f"{path}, line {line}"
    if first["type"] == "extra_forbidden":
        return (
            f"{where}: unknown key (not quoted: the file is not named .yaml); allowed: "
            f"{', '.join(_allowed(first['loc'][:-1], root))}"
        )
    known = _known_prefix(first["loc"], root)
    return f"{where}: {known + ': ' if known else ''}invalid value (not quoted: the file is not named .yaml)"


def _known_prefix(loc: tuple[Any, ...], root: type[BaseModel]) -> str:
    """The leading parts of ``loc`` that are the schema's own key names (safe to print)."""
    parts: list[str] = []
    model: type[BaseModel] | None = root
    for part in loc:
        if model is None or str(part) not in model.model_fields:
            break
        parts.append(str(part))
        model = _section(getattr(model.model_fields[str(part)], "annotation", None))
    return ".".join(parts)


def _line_of(path: Path, loc: tuple[Any, ...]) -> int | None:
    """The line (1-based) of the entry at ``loc`` in the YAML file ``path``, or ``None`` when the
    file does not hold it (it came from an override or a default)."""
    try:
        node = yaml.compose(path.read_text(), Loader=yaml.SafeLoader)
    except (yaml.YAMLError, OSError, UnicodeDecodeError, RecursionError):
        return None
    line = None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            pair = next(((k, v) for k, v in node.value if k.value == str(part)), None)
            if pair is None:
                return None
            line, node = pair[0].start_mark.line + 1, pair[1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return None
    return line


#: A config is a few hundred values; these bounds refuse what would take minutes to expand.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 100_000


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {path.stat().st_size:,} bytes; a config may have at most {MAX_CONFIG_BYTES:,}")
    try:
        data = yaml.safe_load(path.read_text())
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply; a config may nest at most {MAX_CONFIG_DEPTH} levels") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        line = getattr(getattr(error, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    if _too_deep(data):
        raise ConfigError(f"{path}: nested too deeply; a config may nest at most {MAX_CONFIG_DEPTH} levels")
    if _expanded_size(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{path}: more than {MAX_CONFIG_VALUES:,} values once its aliases are expanded "
            "(an alias bomb?); write the config out plainly"
        )
    return data


#: How deep a config's lists and mappings may nest (a real one: about 5).
MAX_CONFIG_DEPTH = 64


def _too_deep(node: Any, limit: int = MAX_CONFIG_DEPTH) -> bool:
    """Whether ``node``'s lists and mappings nest deeper than ``limit`` (walked without
    recursion, each shared part once, so neither a deep nest nor an alias bomb costs much)."""
    stack, seen = [(node, 1)], set()
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list)) or id(value) in seen:
            continue
        if depth > limit:
            return True
        seen.add(id(value))
        stack.extend((child, depth + 1) for child in (value.values() if isinstance(value, dict) else value))
    return False


def _expanded_size(node: Any, limit: int) -> int:
    """How many values ``node`` holds with shared (aliased) parts counted every time they are
    used, counting no further than just past ``limit``."""
    sizes: dict[int, int] = {}

    def size(value: Any) -> int:
        if not isinstance(value, (dict, list)):
            return 1
        if id(value) in sizes:
            return sizes[id(value)]
        children = value.values() if isinstance(value, dict) else value
        total = 1
        for child in children:
            total += size(child)
            if total > limit:
                break
        sizes[id(value)] = total
        return total

    return size(node)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Applies ``a.b=value`` overrides (values parsed as YAML: ``lr=3e-4``, ``weights=[1,2]``)."""
    data = json.loads(json.dumps(data))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"{item}: an override is key=value, e.g. optimizer.lr=3e-4")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, RecursionError):
            raise ConfigError(f"{key}: cannot parse value {raw[:80]!r}") from None
        if _too_deep(value):
            raise ConfigError(f"{key}: nested too deeply; a config may nest at most {MAX_CONFIG_DEPTH} levels")
        set_key(data, key, value)
    return data


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Sets the dotted ``key`` (``optimizer.lr``) of a config's data to ``value``, in place."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{key}: {part} is not a section")
        node = child
    node[parts[-1]] = value


@overload
def load_config(path: str | Path | None, overrides: list[str] | None = None) -> TrainConfig: ...


@overload
def load_config(path: str | Path | None, overrides: list[str] | None, schema: type[C]) -> C: ...


@overload
def load_config(path: str | Path | None, overrides: list[str] | None = None, *, schema: type[C]) -> C: ...


def load_config(
    path: str | Path | None, overrides: list[str] | None = None, schema: type[BaseModel] = TrainConfig
) -> BaseModel:
    """A config of class ``schema`` from a YAML file and ``key=value`` overrides."""
    data = load_yaml(path) if path is not None else {}
    return build_config(apply_overrides(data, overrides or []), schema, source=path)
