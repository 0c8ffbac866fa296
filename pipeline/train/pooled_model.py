"""A sequence classifier on an encoder's pooled sentence embedding (the `train.mode: head` model).

encoder -> pooling of the last hidden states over the attention mask (mean / cls / max, as the encoder
was trained, e.g. sentence-transformers' `1_Pooling`) -> dropout -> linear.

With `entity_markers` (the token ids of <e1>, </e1>, <e2>, </e2>, in each way the tokenizer writes them: alone,
after a space, glued to a word; relation data marked by
`data.entity_markers`), the pooled vector is [sentence; e1 start; e1 span; e2 start; e2 span] (5H): the
state at each opening marker's first token and the mean over the entity's tokens between its markers
(the entity representations of Baldini Soares et al. 2019, "Matching the Blanks", read from a frozen
encoder). A text without a pair of markers (or with one cut off by truncation) gets the sentence vector
in those places.

This file imports only torch and transformers: `save_pretrained` copies it into the model folder and
writes `auto_map` into config.json, so that
`AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)` rebuilds the model
(the standard Hugging Face mechanism for custom models).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

POOLINGS = ("mean", "cls", "max")


class PooledEncoderConfig(PretrainedConfig):
    """`encoder`: the encoder's own config as a dict (with its `model_type`); `pooling`: one of POOLINGS."""

    model_type = "labelpipe_pooled_encoder"

    def __init__(self, encoder: dict | None = None, pooling: str = "mean", classifier_dropout: float = 0.1,
                 entity_markers: list[list[list[int]]] | None = None, **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        if entity_markers is not None and (len(entity_markers) != 4 or not all(
                variants and all(variants) for variants in entity_markers)):
            raise ValueError("entity_markers must hold, for each of <e1>, </e1>, <e2>, </e2>, a non-empty list of "
                             "non-empty token id sequences (the ways the tokenizer writes the marker)")
        self.encoder = dict(encoder or {})
        self.pooling = pooling
        self.classifier_dropout = float(classifier_dropout)
        self.entity_markers = None if entity_markers is None else [[[int(i) for i in seq] for seq in variants]
                                                                   for variants in entity_markers]
        super().__init__(**kwargs)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, H) sentence vectors from last hidden states (B, T, H) and the attention mask (B, T)."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def find_first(input_ids: torch.Tensor, variants: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Where in each row of input_ids (B, T) the earliest of the token id sequences `variants` starts: (B,)
    positions (-1: none) and (B,) the length of the sequence found there (0: none)."""
    batch, length = input_ids.shape
    best = torch.full((batch,), length, dtype=torch.long, device=input_ids.device)
    size = torch.zeros(batch, dtype=torch.long, device=input_ids.device)
    for sequence in variants:
        n = len(sequence)
        if length < n:
            continue
        windows = input_ids.unfold(1, n, 1)  # (B, T - n + 1, n)
        hit = (windows == torch.tensor(sequence, device=input_ids.device)).all(dim=-1)
        position = torch.where(hit.any(dim=1), hit.long().argmax(dim=1), length)
        earlier = position < best
        best, size = torch.where(earlier, position, best), torch.where(earlier, n, size)
    return torch.where(best < length, best, -1), size


def entity_pool(hidden: torch.Tensor, input_ids: torch.Tensor, sentence: torch.Tensor,
                markers: list[list[int]]) -> torch.Tensor:
    """(B, 5H) [sentence; e1 start; e1 span; e2 start; e2 span] from hidden states (B, T, H), the token ids
    (B, T), the sentence vectors (B, H) and, for each of <e1>, </e1>, <e2>, </e2>, its token id sequences."""
    rows, positions = torch.arange(hidden.shape[0], device=hidden.device), torch.arange(hidden.shape[1],
                                                                                        device=hidden.device)
    parts = [sentence]
    for opening, closing in ((markers[0], markers[1]), (markers[2], markers[3])):
        (start, size), (end, _) = find_first(input_ids, opening), find_first(input_ids, closing)
        first = start + size  # the entity's first token
        found = (start >= 0) & (end > first)
        span = ((positions >= first[:, None]) & (positions < end[:, None]) & found[:, None]).to(hidden.dtype)
        span_mean = (hidden * span.unsqueeze(-1)).sum(dim=1) / span.sum(dim=1, keepdim=True).clamp(min=1)
        start_state = hidden[rows, start.clamp(min=0)]
        parts += [torch.where(found[:, None], start_state, sentence), torch.where(found[:, None], span_mean, sentence)]
    return torch.cat(parts, dim=-1)


class PooledHead(nn.Module):
    """(B, H) pooled vectors -> dropout -> linear -> (B, K) logits."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class PooledEncoderForSequenceClassification(PreTrainedModel):
    config_class = PooledEncoderConfig
    base_model_prefix = "encoder"

    def __init__(self, config: PooledEncoderConfig):
        super().__init__(config)
        encoder = dict(config.encoder)
        self.encoder = AutoModel.from_config(AutoConfig.for_model(encoder.pop("model_type"), **encoder))
        self.head = PooledHead(self.pooled_size, config.num_labels, config.classifier_dropout)
        self.post_init()
        self._freeze_unused_pooler()

    def _freeze_unused_pooler(self) -> None:
        """The encoder's own pooler (BERT's [CLS] dense layer) is not used here: frozen, so that full fine-tuning
        gives it no optimizer state and distributed training sees no trainable parameter without a gradient."""
        pooler = getattr(self.encoder, "pooler", None)
        if isinstance(pooler, nn.Module):
            pooler.requires_grad_(False)

    @property
    def pooled_size(self) -> int:
        """Size of the pooled vector: H, or 5H with entity markers."""
        return self.encoder.config.hidden_size * (1 if self.config.entity_markers is None else 5)

    @classmethod
    def from_encoder(cls, path: str, pooling: str = "mean", **config_kwargs):
        """A new classifier on the pretrained encoder `path` (its weights loaded; a fresh linear head)."""
        encoder = AutoModel.from_pretrained(path, dtype=torch.float32)
        encoder_config = {k: v for k, v in encoder.config.to_dict().items() if k != "_name_or_path"}
        config = PooledEncoderConfig(encoder=encoder_config, pooling=pooling, **config_kwargs)
        model = cls(config)
        model.encoder = encoder
        model._freeze_unused_pooler()
        return model

    def pooled(self, input_ids=None, attention_mask=None, **encoder_inputs) -> torch.Tensor:
        """(B, pooled_size) pooled last hidden states: what head mode caches."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **encoder_inputs).last_hidden_state
        sentence = pool(hidden, attention_mask, self.config.pooling)
        if self.config.entity_markers is None:
            return sentence
        return entity_pool(hidden, input_ids, sentence, self.config.entity_markers)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        logits = self.head(self.pooled(input_ids, attention_mask, **extra))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


PooledEncoderConfig.register_for_auto_class()
PooledEncoderForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
