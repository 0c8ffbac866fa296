"""A sequence classifier on an encoder's pooled sentence embedding (the `train.mode: head` model).

encoder -> pooling of the last hidden states over the attention mask (mean / cls / max, as the encoder
was trained, e.g. sentence-transformers' `1_Pooling`) -> dropout -> linear.

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
                 **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        self.encoder = dict(encoder or {})
        self.pooling = pooling
        self.classifier_dropout = float(classifier_dropout)
        super().__init__(**kwargs)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """(B, H) sentence vectors from last hidden states (B, T, H) and the attention mask (B, T)."""
    if mode == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(m == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


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
        self.head = PooledHead(self.encoder.config.hidden_size, config.num_labels, config.classifier_dropout)
        self.post_init()

    @classmethod
    def from_encoder(cls, path: str, pooling: str = "mean", **config_kwargs):
        """A new classifier on the pretrained encoder `path` (its weights loaded; a fresh linear head)."""
        encoder = AutoModel.from_pretrained(path, dtype=torch.float32)
        encoder_config = {k: v for k, v in encoder.config.to_dict().items() if k != "_name_or_path"}
        config = PooledEncoderConfig(encoder=encoder_config, pooling=pooling, **config_kwargs)
        model = cls(config)
        model.encoder = encoder
        return model

    def pooled(self, input_ids=None, attention_mask=None, **encoder_inputs) -> torch.Tensor:
        """(B, H) pooled last hidden states: what head mode caches."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **encoder_inputs).last_hidden_state
        return pool(hidden, attention_mask, self.config.pooling)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        logits = self.head(self.pooled(input_ids, attention_mask, **extra))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return SequenceClassifierOutput(loss=loss, logits=logits)


PooledEncoderConfig.register_for_auto_class()
PooledEncoderForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
