"""Exact text encoding without the padding: cut CLIP's token batch at its longest end-of-text.

open_clip pads every text query to the context length (77 for ViT-B-32) although most queries are
under 10 tokens. In CLIP's text tower the attention mask is causal and the pooled feature is the
one at the end-of-text token (``text_pool_type='argmax'``: EOT is the largest token id), so no
position after a text's EOT can change its pooled feature. Running the tower on the first ``L``
positions only, where ``L`` is the longest EOT position in the batch + 1, therefore gives the same
embedding as the full run (up to float rounding of the matmuls), at a fraction of the cost.

The trim applies only where that argument holds (checked once, at construction):

* the model is open_clip's ``CLIP`` with its own ``token_embedding`` / ``positional_embedding``
  / ``transformer`` / ``ln_final`` (not ``CustomTextCLIP`` towers such as SigLIP's or CoCa's);
* ``text_pool_type == 'argmax'`` (SigLIP's 'last'/'first' pooling depends on the padding);
* ``attn_mask`` is the strictly causal mask (``-inf`` above the diagonal, 0 elsewhere).

Every other model keeps open_clip's ``encode_text`` untouched. ``tests/unit/test_text_trim.py``
checks the equivalence against the full path.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def supports_trim(model: nn.Module) -> bool:
    """Whether ``model.encode_text`` can be run exactly on a trimmed token batch."""
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if type(model).__name__ != "CLIP" or not all(hasattr(model, name) for name in needed):
        return False
    if getattr(model, "text_pool_type", None) != "argmax":
        return False
    mask = model.attn_mask
    if not isinstance(mask, torch.Tensor) or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    n = mask.shape[0]
    positional = model.positional_embedding
    if not isinstance(positional, torch.Tensor) or positional.shape[0] != n:
        return False
    causal = torch.full((n, n), float("-inf"), dtype=mask.dtype, device=mask.device).triu_(1)
    return bool(torch.equal(mask, causal))


def trimmed_length(tokens: torch.Tensor) -> int:
    """Positions needed for this batch: the last end-of-text (argmax) position + 1."""
    if tokens.numel() == 0:
        return int(tokens.shape[-1])
    return int(tokens.argmax(dim=-1).max().item()) + 1


def encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` run on the first ``trimmed_length(tokens)`` positions.

    Call only when ``supports_trim(model)`` is true.
    """
    return encode_text_prefix(model, tokens[:, : trimmed_length(tokens)])


def encode_text_prefix(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``encode_text`` on a token batch already cut after its last end-of-text token.

    Mirrors open_clip 3.3's ``CLIP.encode_text`` step by step, with the positional embedding and
    the causal mask cut to the batch's length (taken from its shape, so it also exports with a
    dynamic sequence axis).
    """
    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype)
    x = x + model.positional_embedding[:length].to(cast_dtype)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    projection = model.text_projection
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return x


def text_encoder(model: nn.Module, *, trim: bool = True) -> Any:
    """The callable to encode token batches: the trimmed path where exact, else encode_text."""
    if trim and supports_trim(model):
        return lambda tokens: encode_text_trimmed(model, tokens)
    return model.encode_text


__all__ = [
    "encode_text_prefix", "encode_text_trimmed", "supports_trim", "text_encoder", "trimmed_length",
]
