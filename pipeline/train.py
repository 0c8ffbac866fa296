"""Fine-tune a Hugging Face encoder as a sequence classifier on (soft) labels with per-item weights."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import TrainConfig
from .losses import get_loss
from .models import resolve_encoder


@dataclass
class TrainedClassifier:
    model: object  # transformers PreTrainedModel
    tokenizer: object
    history: list[dict] = field(default_factory=list)


def _set_seed(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def load_classifier(name: str, classes: list[str]):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_encoder(name)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(classes), id2label=dict(enumerate(classes)),
        label2id={c: i for i, c in enumerate(classes)})
    return model, tokenizer


def fine_tune(texts: list[str], targets: np.ndarray, weights: np.ndarray, classes: list[str],
              cfg: TrainConfig, valid_texts: list[str] | None = None, valid_targets: np.ndarray | None = None,
              seed: int = 0, progress: bool = True) -> TrainedClassifier:
    """Train on texts (N) with targets (N, K) and weights (N,); items with weight 0 are left out.

    Model selection: the epoch with the best accuracy against `valid_targets` (their argmax; noisy
    labels unless the caller passes gold one-hots). Uses `accelerate` for device placement and mixed
    precision on GPU.
    """
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    _set_seed(seed)
    keep = np.flatnonzero(np.asarray(weights) > 0)
    if len(keep) == 0:
        raise ValueError("no training items: every item has weight 0 (no labeler covered any train item)")
    model, tokenizer = load_classifier(cfg.model, classes)
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    loss_fn = get_loss(cfg.loss)

    train_texts = [texts[i] for i in keep]
    target_t = torch.tensor(targets[keep], dtype=torch.float32)
    weight_t = torch.tensor(np.asarray(weights)[keep], dtype=torch.float32)

    def collate(batch: list[int]):  # tokenize per batch: pad to the batch's longest text only
        enc = tokenizer([train_texts[i] for i in batch], truncation=True, max_length=cfg.max_length,
                        padding=True, return_tensors="pt")
        return enc["input_ids"], enc["attention_mask"], target_t[batch], weight_t[batch]

    generator = torch.Generator().manual_seed(seed)
    loader = torch.utils.data.DataLoader(range(len(keep)), batch_size=cfg.batch_size, shuffle=True,
                                         generator=generator, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * len(loader)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    result = TrainedClassifier(model, tokenizer)
    best_acc, best_state = -1.0, None
    for epoch in range(cfg.epochs):
        model.train()
        total = 0.0
        for input_ids, mask, target, weight in tqdm(loader, desc=f"train epoch {epoch + 1}/{cfg.epochs}",
                                                    disable=not progress, leave=False):
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
            loss = loss_fn(logits, target, weight)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            total += loss.item()
        record = {"epoch": epoch + 1, "train_loss": total / max(len(loader), 1)}
        if valid_texts:
            proba = predict_proba(result, valid_texts, batch_size=cfg.batch_size * 2, max_length=cfg.max_length,
                                  progress=False)
            record["valid_accuracy"] = float(np.mean(proba.argmax(1) == np.asarray(valid_targets).argmax(1)))
            if record["valid_accuracy"] > best_acc:
                best_acc = record["valid_accuracy"]
                best_state = copy.deepcopy(accelerator.unwrap_model(model).state_dict())
        result.history.append(record)
    model = accelerator.unwrap_model(model)
    if best_state is not None:
        model.load_state_dict(best_state)
    result.model = model.float().eval()
    return result


@torch.no_grad()
def predict_proba(clf: TrainedClassifier, texts: list[str], batch_size: int = 64, max_length: int = 128,
                  temperature: float = 1.0, progress: bool = True) -> np.ndarray:
    """(N, K) class probabilities, softmax(logits / temperature), in batches."""
    model, tokenizer = clf.model, clf.tokenizer
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in tqdm(range(0, len(texts), batch_size), desc="predict", disable=not progress, leave=False):
        enc = tokenizer(texts[start:start + batch_size], truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt").to(device)
        logits = model(**enc).logits.float() / temperature
        out.append(torch.softmax(logits, dim=-1).cpu().numpy())
    n_classes = model.config.num_labels
    return np.concatenate(out) if out else np.zeros((0, n_classes))
