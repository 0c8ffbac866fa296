"""Fine-tune a Hugging Face encoder as a sequence classifier on (soft) labels with per-item weights.

Two modes (`train.mode`):
- `full`: fine-tune the whole encoder as a standard `AutoModelForSequenceClassification` (GPU
  recommended; `accelerate` handles the device, mixed precision and multi-GPU when launched with
  `accelerate launch`).
- `head`: freeze the encoder, cache each text's sentence embedding once (the encoder's own pooling,
  e.g. mean pooling for all-MiniLM-L6-v2; see `models.sentence_pooling`) and train only a linear
  classifier on the cache: an epoch takes well under a second on CPU. The model is a
  `pooled_model.PooledEncoderForSequenceClassification`, saved in Hugging Face format with its code
  (`trust_remote_code=True` loads it with the Auto classes).

Losses from `pipeline.losses`; `loss: coteaching` trains two networks that pick each other's small-loss
items. Model selection and early stopping on the valid split (noisy labels or gold; by `train.select_by`:
valid accuracy, or the valid NLL after a cross-fitted temperature, each the other's tie-break; `auto`: NLL
on gold valid labels, accuracy on noisy ones), then temperature scaling on the same valid labels
(`pipeline.calibration`); `train.calibration: vector` adds vector scaling (a scale and a bias per class),
used instead of the temperature. The loss's own hyper-parameters (gce q, sce alpha/beta, elr beta/lam,
co-teaching forget rate) are chosen on the same valid labels from a small grid (`pipeline.loss_search`; by
default in head mode only).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..artifacts import write_npy
from ..calibration import crossfit_nll, fit_temperature, fit_vector_scaling, scaled_proba
from ..config import TrainConfig
from ..data import ENTITY_MARKERS, has_entity_markers
from ..encoders import resolve_encoder, sentence_pooling, torch_device
from ..errors import LabelpipeError
from .losses import coteaching_select, make_loss, weighted_mean

MODEL_META = "labelpipe.json"
log = logging.getLogger("labelpipe")


@dataclass
class TrainedClassifier:
    model: object  # transformers PreTrainedModel (sequence classification)
    tokenizer: object
    classes: list[str] = field(default_factory=list)
    temperature: float = 1.0
    max_length: int = 128
    history: list[dict] = field(default_factory=list)
    seconds_per_epoch: float = float("nan")  # mean wall time of a training epoch (valid scoring excluded)
    embed_seconds: float = 0.0  # head mode: time to compute the cached encoder states
    best_epoch: int | None = None
    vector_scale: np.ndarray | None = None  # (K,) and (K,): vector scaling, used instead of the temperature
    vector_bias: np.ndarray | None = None
    loss_params: dict = field(default_factory=dict)  # the loss's hyper-parameters used (searched or given)
    search: list[dict] = field(default_factory=list)  # `train.loss_search`: one record per grid point tried
    search_seconds: float = 0.0  # wall time of the whole search (every grid point's training), 0 without one
    transition: np.ndarray | None = None  # loss forward: the (K, K) noise transition matrix it trained with

    @property
    def calibration(self) -> str:
        return "temperature" if self.vector_scale is None else "vector"

    def calibrated_proba(self, logits: np.ndarray) -> np.ndarray:
        """(N, K) calibrated probabilities from raw logits (N, K): softmax(logits / T), or with vector scaling
        softmax(logits * vector_scale + vector_bias)."""
        if self.vector_scale is None:
            return scaled_proba(logits, self.temperature)
        return scaled_proba(np.asarray(logits) * self.vector_scale + self.vector_bias)


def _set_seed(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def load_classifier(name: str, classes: list[str], mode: str = "full", pooling: str = "auto",
                    entity_pooling: bool = False):
    """A fresh sequence classifier over `classes` on top of the encoder `name`, and its tokenizer.

    mode "full": the standard `AutoModelForSequenceClassification`; "head": a
    `PooledEncoderForSequenceClassification` with the encoder's own sentence pooling (`pooling`: auto =
    as the encoder was trained, or mean / cls / max). With `entity_pooling` (either mode) the pooled-encoder
    class reads the entity pair's states too (the marker strings `data.ENTITY_MARKERS` as this tokenizer
    writes them); in full mode its encoder is fine-tuned with the head.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_encoder(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    labels = dict(num_labels=len(classes), id2label=dict(enumerate(classes)),
                  label2id={c: i for i, c in enumerate(classes)})
    if mode == "head" or entity_pooling:
        from .pooled_model import PooledEncoderForSequenceClassification

        markers = [marker_token_variants(tokenizer, m) for m in ENTITY_MARKERS] if entity_pooling else None
        model = PooledEncoderForSequenceClassification.from_encoder(path, sentence_pooling(name, pooling),
                                                                    entity_markers=markers, **labels)
        return model, tokenizer
    model = AutoModelForSequenceClassification.from_pretrained(path, dtype=torch.float32, **labels)
    return model, tokenizer


def marker_token_variants(tokenizer, marker: str) -> list[list[int]]:
    """The token id sequences `tokenizer` writes `marker` as: alone, after a space, and glued to a preceding word
    (one for WordPiece; byte-level BPE and SentencePiece mark a leading space in the token itself)."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    variants = [ids(marker), ids(" " + marker)]
    word = ids("a")
    glued = ids("a" + marker)
    if glued[:len(word)] == word and len(glued) > len(word):
        variants.append(glued[len(word):])
    unique = []
    for v in variants:
        if v and v not in unique:
            unique.append(v)
    return unique


def uses_entity_pooling(cfg: TrainConfig, texts: list[str]) -> bool:
    """`cfg.entity_pooling` resolved: on / off, or auto = when most `texts` carry entity markers."""
    if cfg.entity_pooling == "auto":
        return has_entity_markers(texts)
    return cfg.entity_pooling == "on"


def _head(model) -> torch.nn.Module:
    """The head (dropout, linear) of a head-mode model: it maps cached pooled states (B, H) to logits (B, K)."""
    head = getattr(model, "head", None)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no pooled head: head mode needs a model from "
                         "load_classifier(..., mode='head')")
    return head


def _length_batches(texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Index batches of texts of similar length (by characters), so that little padding is computed."""
    order = np.argsort([len(t) for t in texts], kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


@torch.no_grad()
def encoder_states(model, tokenizer, texts: list[str], batch_size: int = 64, max_length: int = 128,
                   progress: bool = True, cache_dir: Path | None = None) -> np.ndarray:
    """(N, P) float32 pooled last hidden states of a head-mode model's frozen encoder (`model.pooled`; P =
    `model.pooled_size`); cached in `cache_dir` by content (encoder weights' name, pooling, entity markers,
    max_length, texts)."""
    path = None
    if cache_dir is not None:
        encoder = model.encoder.config
        key = hashlib.sha256("\x1f".join([str(encoder._name_or_path), model.config.pooling,
                                          str(model.config.entity_markers), str(max_length), *texts]).encode())
        path = Path(cache_dir) / f"{model.config.pooling}-{key.hexdigest()[:20]}.npy"
        if path.exists():
            return np.load(path)
    model.eval()
    device = next(model.parameters()).device
    states = np.zeros((len(texts), model.pooled_size), np.float32)
    for batch in tqdm(_length_batches(texts, batch_size), desc="encode", disable=not progress, leave=False):
        enc = tokenizer([texts[i] for i in batch], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt").to(device)
        states[batch] = model.pooled(**enc).float().cpu().numpy()
    if path is not None:
        write_npy(states, path)
    return states


def head_features(cfg: TrainConfig, classes: list[str], texts: list[str], valid_texts: list[str] | None,
                  progress: bool = True, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Head mode's frozen-encoder states (`encoder_states`) of the train texts (N, P) and the valid texts (Nv, P)
    (None without them): one encoder pass, to share between the trainings of a search or of a two-step loss."""
    model, tokenizer = load_classifier(cfg.model, classes, "head", cfg.pooling, uses_entity_pooling(cfg, texts))
    model.to(torch_device())
    batch = cfg.batch_size * 2
    return (encoder_states(model, tokenizer, texts, batch, cfg.max_length, progress, cache_dir),
            None if valid_texts is None else encoder_states(model, tokenizer, valid_texts, batch, cfg.max_length,
                                                            progress, cache_dir))


def _mixed_precision(setting: str) -> str:
    if setting == "fp16" and not torch.cuda.is_available():
        raise ValueError("train.mixed_precision: fp16 needs a GPU; use bf16 or no on a CPU")
    if setting != "auto":
        return setting
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _accelerator(setting: str):
    """An `accelerate.Accelerator` for this run's mixed precision. Accelerate keeps one process-wide state
    that refuses a change of precision; a later run in the same process with another setting resets the
    precision part of it (the distributed part, set by `accelerate launch`, is kept)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    precision = _mixed_precision(setting)
    state = AcceleratorState._shared_state
    if state and str(state.get("_mixed_precision", precision)) != precision:
        AcceleratorState._reset_state()
    return Accelerator(mixed_precision=precision, cpu=not torch.cuda.is_available())


def fine_tune(texts: list[str], targets: np.ndarray, weights: np.ndarray, classes: list[str],
              cfg: TrainConfig, valid_texts: list[str] | None = None, valid_labels: np.ndarray | None = None,
              seed: int = 0, progress: bool = True, cache_dir: Path | None = None,
              features: tuple[np.ndarray, np.ndarray | None] | None = None,
              valid_targets: np.ndarray | None = None) -> TrainedClassifier:
    """Train on texts (N) with targets (N, K) label distributions and weights (N,); weight-0 items are left out.

    valid_labels: (Nv,) int class indices of the valid texts (noisy or gold, -1 = unknown) for model
    selection, early stopping (`cfg.patience`) and temperature scaling (`cfg.calibrate`). Without valid
    items, the last epoch is kept and the temperature stays 1. `features` (head mode only): precomputed
    `encoder_states` of (texts, valid_texts), to share the encoder pass between runs.

    Trains the one configuration `cfg` (its `loss_params` as given; `search.train_classifier` searches them).
    Each history record has the epoch's `valid_accuracy` and cross-fitted `valid_nll` (`selection_key`).
    `cfg.select_by: auto` is resolved from `cfg.valid_labels` (gold → nll, else accuracy; the train stage
    passes the source it actually chose).

    `loss: forward` takes `loss_params.transition`: a K x K matrix, or how to estimate it (`forward_transition`):
    `gold` (counted on the valid items' gold labels against `valid_targets`, their (Nv, K) noisy label
    distributions; needs `cfg.valid_labels: gold`), `anchors` (from a soft-CE model of the noisy labels), or
    `auto` (gold when possible, else anchors). So does `loss: coteaching` with `loss_params.base: forward`.
    """
    from transformers import get_linear_schedule_with_warmup

    if cfg.select_by == "auto":
        cfg = cfg.model_copy(update={"select_by": resolve_select_by("auto", cfg.valid_labels)})
    targets, weights = np.asarray(targets, dtype=np.float32), np.asarray(weights, dtype=np.float32)
    if len(texts) != len(targets) or len(texts) != len(weights):
        raise ValueError(f"fine_tune: {len(texts)} texts, {len(targets)} targets, {len(weights)} weights")
    keep = np.flatnonzero(weights > 0)
    if len(keep) == 0:
        raise ValueError("no training items: every item has weight 0 (no labeler covered any train item)")
    valid_labels = None if valid_labels is None else np.asarray(valid_labels)
    scored = valid_texts is not None and valid_labels is not None and (valid_labels >= 0).any()
    head = cfg.mode == "head"
    epochs, lr = (cfg.head_epochs, cfg.head_lr) if head else (cfg.epochs, cfg.lr)
    coteach = cfg.loss == "coteaching"
    params, transition = dict(cfg.loss_params), None
    if coteach:
        forget_rate = float(params.pop("forget_rate", 0.2))
        ramp_epochs = int(params.pop("ramp_epochs", max(1, epochs // 4)))
    base = params.pop("base", "soft_ce") if coteach else cfg.loss
    embed_seconds = 0.0
    if base == "forward" and head and features is None:  # the anchor estimate trains on the same states: encode once
        start = time.perf_counter()
        features = head_features(cfg, classes, texts, valid_texts if scored else None, progress, cache_dir)
        embed_seconds = time.perf_counter() - start
    if base == "forward":  # also as co-teaching's base loss
        transition = forward_transition(params.get("transition", "auto"), cfg, texts, targets, weights, classes,
                                        valid_texts, valid_labels, valid_targets, seed, cache_dir, features)
        params["transition"] = transition
    loss_fn = make_loss(base, len(keep), len(classes), **params)

    accelerator = _accelerator(cfg.mixed_precision)
    _set_seed(seed)
    entity = uses_entity_pooling(cfg, texts)
    model, tokenizer = load_classifier(cfg.model, classes, cfg.mode, cfg.pooling, entity)
    result = TrainedClassifier(model, tokenizer, classes=list(classes), max_length=cfg.max_length,
                               loss_params=dict(cfg.loss_params), transition=transition)

    target_t = torch.tensor(targets[keep])
    weight_t = torch.tensor(weights[keep])
    if head:
        start = time.perf_counter()
        model.to(accelerator.device)
        if features is None:
            train_x = encoder_states(model, tokenizer, texts, cfg.batch_size * 2, cfg.max_length, progress,
                                     cache_dir)
            valid_x = encoder_states(model, tokenizer, valid_texts, cfg.batch_size * 2, cfg.max_length, progress,
                                     cache_dir) if scored else None
        else:
            train_x, valid_x = features
        result.embed_seconds = embed_seconds + time.perf_counter() - start
        train_x = torch.tensor(np.asarray(train_x, dtype=np.float32)[keep])
        valid_x = torch.tensor(np.asarray(valid_x, dtype=np.float32)) if scored else None
        model.requires_grad_(False)
        nets = [_head(model)]
        if coteach:
            peer = copy.deepcopy(nets[0])
            torch.manual_seed(seed + 1)
            peer.classifier.reset_parameters()
            nets.append(peer)
        for net in nets:
            net.requires_grad_(True)

        def collate(batch: list[int]):
            return (train_x[batch],), target_t[batch], weight_t[batch], torch.tensor(batch)

        def forward(net, inputs):
            return net(inputs[0])

        def valid_logits(net) -> np.ndarray:
            net.eval()
            with torch.no_grad():
                return net(valid_x.to(accelerator.device)).float().cpu().numpy()
    else:
        nets = [model]
        if coteach:
            _set_seed(seed + 1)
            nets.append(load_classifier(cfg.model, classes, cfg.mode, cfg.pooling, entity)[0])
        train_texts = [texts[i] for i in keep]

        def collate(batch: list[int]):  # tokenize per batch: pad to the batch's longest text only
            enc = tokenizer([train_texts[i] for i in batch], truncation=True, max_length=cfg.max_length,
                            padding=True, return_tensors="pt")
            return (enc["input_ids"], enc["attention_mask"]), target_t[batch], weight_t[batch], torch.tensor(batch)

        def forward(net, inputs):
            return net(input_ids=inputs[0], attention_mask=inputs[1]).logits

        def valid_logits(net) -> np.ndarray:
            return _logits(net, tokenizer, valid_texts, cfg.batch_size * 2, cfg.max_length, progress=False)

    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(range(len(keep)), batch_size=cfg.batch_size, shuffle=True,
                                         generator=generator, collate_fn=collate)
    trainable = [p for net in nets for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=cfg.weight_decay)
    steps = epochs * len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    prepared = accelerator.prepare(*nets, optimizer, loader, scheduler)
    nets, (optimizer, loader, scheduler) = list(prepared[:len(nets)]), prepared[len(nets):]

    def step_loss(inputs, target, weight, index, global_step: int) -> torch.Tensor:
        if not coteach:
            return loss_fn(forward(nets[0], inputs).float(), target, weight, index)
        la = loss_fn.per_item(forward(nets[0], inputs).float(), target, index)
        lb = loss_fn.per_item(forward(nets[1], inputs).float(), target, index)
        rate = forget_rate * min(1.0, global_step / max(1, ramp_epochs * len(loader)))
        ia, ib = coteaching_select(la, lb, rate)
        return weighted_mean(la[ia], weight[ia]) + weighted_mean(lb[ib], weight[ib])

    def _epochs() -> None:
        nonlocal best_score, best_state, stale, global_step
        for epoch in range(epochs):
            for net in nets:
                net.train()
            total, start = 0.0, time.perf_counter()
            for inputs, target, weight, index in tqdm(loader, desc=f"train epoch {epoch + 1}/{epochs}",
                                                      disable=not progress, leave=False):
                loss = step_loss(inputs, target, weight, index, global_step)
                accelerator.backward(loss)
                accelerator.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                total += loss.item()
                global_step += 1
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            epoch_seconds.append(time.perf_counter() - start)
            record = {"epoch": epoch + 1, "train_loss": total / max(len(loader), 1), "seconds": epoch_seconds[-1]}
            if scored:
                scores = []
                for net in nets:
                    logits = valid_logits(net)
                    scores.append({"valid_accuracy": _accuracy(logits, valid_labels),
                                   "valid_nll": crossfit_nll(logits, valid_labels)})
                keys = [selection_key(s, cfg.select_by) for s in scores]
                which = max(range(len(nets)), key=keys.__getitem__)  # co-teaching: the better of the two
                record.update(scores[which])
                if best_score is None or keys[which] > best_score:
                    best_score, stale = keys[which], 0
                    unwrapped = accelerator.unwrap_model(nets[which])
                    best_state = {k: v.detach().clone() for k, v in unwrapped.state_dict().items()}
                    result.best_epoch = epoch + 1
                else:
                    stale += 1
            result.history.append(record)
            if scored and cfg.patience is not None and stale >= cfg.patience:
                break
    best_score, best_state, stale, epoch_seconds, global_step = None, None, 0, [], 0
    threads = torch.get_num_threads()
    if head and accelerator.device.type == "cpu":
        torch.set_num_threads(1)  # small matrices: one thread is faster, and far faster on a busy machine
    try:
        _epochs()
    finally:
        torch.set_num_threads(threads)
    # without accelerate's autocast wrapper, so that the returned model predicts (and is calibrated) in fp32,
    # as its saved copy does
    final = accelerator.unwrap_model(nets[0], keep_fp32_wrapper=False)  # co-teaching's peer is dropped
    if best_state is not None:
        final.load_state_dict(best_state)
    result.model = model.float().eval()
    result.seconds_per_epoch = float(np.mean(epoch_seconds))
    if scored and cfg.calibrate:
        logits = valid_logits(final) if head else _logits(result.model, tokenizer, valid_texts, cfg.batch_size * 2,
                                                           cfg.max_length, progress=False)
        result.temperature = fit_temperature(logits, valid_labels)
        missing = [c for k, c in enumerate(classes) if not (valid_labels == k).any()]
        if cfg.calibration == "vector" and missing:
            log.warning("train.calibration: vector needs valid labels of every class (none for %s); "
                        "using the temperature", ", ".join(missing))
        elif cfg.calibration == "vector":
            result.vector_scale, result.vector_bias = fit_vector_scaling(logits, valid_labels)
    return result


def forward_transition(spec, cfg: TrainConfig, texts: list[str], targets: np.ndarray, weights: np.ndarray,
                       classes: list[str], valid_texts: list[str] | None, valid_labels: np.ndarray | None,
                       valid_targets: np.ndarray | None, seed: int, cache_dir: Path | None,
                       features: tuple[np.ndarray, np.ndarray | None] | None) -> np.ndarray:
    """(K, K) noise transition matrix for `loss: forward` from `loss_params.transition` (see `fine_tune`)."""
    from .transition import transition_from_anchors, transition_from_gold

    if not isinstance(spec, str):
        return np.asarray(spec, dtype=float)
    has_gold = (cfg.valid_labels == "gold" and valid_labels is not None and valid_targets is not None
                and bool((np.asarray(valid_labels) >= 0).any()))
    if spec == "auto":
        spec = "gold" if has_gold else "anchors"
    if spec == "gold":
        if not has_gold:
            raise ValueError("train.loss_params.transition: gold needs gold valid labels (train.valid_labels: gold) "
                             "and the valid items' noisy labels; use anchors without them")
        return transition_from_gold(valid_targets, valid_labels)
    if spec != "anchors":
        raise ValueError(f"train.loss_params.transition must be a K x K matrix, auto, gold or anchors, got {spec!r}")
    noisy_cfg = cfg.model_copy(update={"loss": "soft_ce", "loss_params": {}, "loss_search": "off", "calibrate": False})
    noisy_model = fine_tune(texts, targets, weights, classes, noisy_cfg, valid_texts=valid_texts,
                            valid_labels=valid_labels, seed=seed, progress=False, cache_dir=cache_dir, features=features)
    logits = (head_logits(noisy_model, features[0]) if features is not None and cfg.mode == "head"
              else predict_logits(noisy_model, texts, batch_size=cfg.batch_size * 2, progress=False))
    return transition_from_anchors(scaled_proba(logits, 1.0)[np.asarray(weights) > 0])


def resolve_select_by(select_by: str, valid_source: str) -> str:
    """`train.select_by` with `auto` resolved: nll when selecting on gold valid labels, accuracy on noisy ones
    (or when the source is not known, e.g. `valid_labels: auto` outside the pipeline's train stage)."""
    if select_by != "auto":
        return select_by
    return "nll" if valid_source == "gold" else "accuracy"


def selection_key(record: dict, select_by: str = "accuracy") -> tuple[float, float]:
    """Model-selection key of an epoch's valid scores (`valid_accuracy`, `valid_nll`), higher is better:
    accuracy with the NLL as tie-break (`select_by: accuracy`), or the NLL with accuracy as tie-break (`nll`)."""
    acc, neg_nll = record["valid_accuracy"], -record["valid_nll"]
    if select_by == "nll":
        return (neg_nll, acc)
    if select_by == "accuracy":
        return (acc, neg_nll)
    raise ValueError(f"select_by must be accuracy or nll, got {select_by!r}")


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    known = labels >= 0
    return float(np.mean(logits[known].argmax(1) == labels[known]))


@torch.no_grad()
def _logits(model, tokenizer, texts: list[str], batch_size: int, max_length: int, progress: bool) -> np.ndarray:
    model.eval()
    device = next(model.parameters()).device
    out = np.zeros((len(texts), model.config.num_labels), np.float32)
    for batch in tqdm(_length_batches(texts, batch_size), desc="predict", disable=not progress, leave=False):
        enc = tokenizer([texts[i] for i in batch], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt").to(device)
        out[batch] = model(**enc).logits.float().cpu().numpy()
    return out


def predict_logits(clf: TrainedClassifier, texts: list[str], batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """(N, K) raw logits, in batches."""
    return _logits(clf.model, clf.tokenizer, texts, batch_size, clf.max_length, progress)


def predict_proba(clf: TrainedClassifier, texts: list[str], batch_size: int = 64, max_length: int | None = None,
                  temperature: float | None = None, progress: bool = True) -> np.ndarray:
    """(N, K) calibrated class probabilities (`clf.calibrated_proba`), or softmax(logits / temperature) when
    a temperature is given."""
    logits = _logits(clf.model, clf.tokenizer, texts, batch_size, max_length or clf.max_length, progress)
    return clf.calibrated_proba(logits) if temperature is None else scaled_proba(logits, temperature)


def save_classifier(clf: TrainedClassifier, path: Path, extra: dict | None = None) -> None:
    """Hugging Face `save_pretrained` (model + tokenizer; id2label holds the class names; a head-mode model
    also gets its code file and `auto_map`) plus `labelpipe.json` with the classes, temperature and
    max_length."""
    path = Path(path)
    clf.model.save_pretrained(path)
    clf.tokenizer.save_pretrained(path)
    meta = {"format": "labelpipe-classifier", "version": 1, "classes": clf.classes,
            "temperature": clf.temperature, "calibration": clf.calibration, "max_length": clf.max_length,
            **(extra or {})}
    if clf.vector_scale is not None:
        meta.update(vector_scale=np.asarray(clf.vector_scale).tolist(), vector_bias=np.asarray(clf.vector_bias).tolist())
    (path / MODEL_META).write_text(json.dumps(meta, indent=2))


def load_trained(path: Path, device: str | None = None) -> TrainedClassifier:
    """A classifier saved by `save_classifier` (a run folder's `model/`), on `device` (default: the GPU if there
    is one, else the CPU)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .pooled_model import PooledEncoderConfig, PooledEncoderForSequenceClassification

    path = Path(path)
    meta_path = path / MODEL_META
    if not path.is_dir():
        raise LabelpipeError(f"{path}: not found (give a run folder or its model/ folder)")
    if not meta_path.exists() or not (path / "config.json").exists():
        raise LabelpipeError(f"{path}: not a labelpipe model folder (no {MODEL_META} / config.json); "
                             "give a run folder or its model/ folder")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as err:
        raise LabelpipeError(f"{meta_path}: not valid JSON ({err.msg})") from None
    if meta.get("format") != "labelpipe-classifier":
        raise LabelpipeError(f"{meta_path}: not a labelpipe classifier (format {meta.get('format')!r})")
    if json.loads((path / "config.json").read_text()).get("model_type") == PooledEncoderConfig.model_type:
        model = PooledEncoderForSequenceClassification.from_pretrained(path)  # our code, not the folder's copy
    else:
        model = AutoModelForSequenceClassification.from_pretrained(path)
    model.to(device or torch_device()).eval()
    tokenizer = AutoTokenizer.from_pretrained(path, config=model.config)  # no second look at config.json's auto_map
    vector = meta.get("calibration") == "vector"
    return TrainedClassifier(model, tokenizer, classes=list(meta["classes"]),
                             temperature=float(meta.get("temperature", 1.0)),
                             max_length=int(meta.get("max_length", 128)),
                             vector_scale=np.asarray(meta["vector_scale"]) if vector else None,
                             vector_bias=np.asarray(meta["vector_bias"]) if vector else None)


@torch.no_grad()
def head_logits(clf: TrainedClassifier, states: np.ndarray) -> np.ndarray:
    """(N, K) logits of a head-mode classifier on its cached `encoder_states` (N, H): the same numbers as
    the full model on the texts, without running the encoder again."""
    head = _head(clf.model).eval()
    device = next(head.parameters()).device
    return head(torch.tensor(np.asarray(states, dtype=np.float32), device=device)).float().cpu().numpy()
