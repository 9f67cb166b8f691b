"""One small exception hierarchy for everything mmrag raises on purpose."""

from __future__ import annotations


class MmragError(Exception):
    """Base class of every error mmrag raises deliberately."""


class ConfigError(MmragError):
    """Settings or arguments that cannot work together."""


class FilterError(ConfigError):
    """A structured search filter that cannot be turned into a safe expression."""

    def __init__(
        self, message: str, *, field: str | None = None, kind: str = "invalid_filter"
    ) -> None:
        super().__init__(message)
        self.field = field  # the filter field at fault, when one is
        self.kind = kind  # invalid_filter | unknown_filter_field


class TextIndexMissingError(ConfigError):
    """Keyword or hybrid search asked of a collection (or server) without the BM25 text index."""


class ModelNotFoundError(ConfigError):
    """A model name, pretrained tag or checkpoint that cannot be resolved."""


class EmbeddingError(MmragError):
    """The model failed to embed a batch."""


class ImageDecodeError(MmragError):
    """Bytes that are not a decodable image, or one over the pixel cap."""


class StoreError(MmragError):
    """The vector store refused or failed an operation."""


class StoreUnavailableError(StoreError):
    """The vector store cannot be reached."""


class CollectionNotFoundError(StoreError):
    """The named collection does not exist."""


class CollectionEmptyError(StoreError):
    """The named collection exists but holds no items yet."""


class ModelMismatchError(StoreError):
    """Vectors of one model written to, or queried against, a collection built with another."""


class AnswererError(MmragError):
    """The answerer (extractive or LLM) could not produce an answer."""


class LLMError(AnswererError):
    """The LLM endpoint refused or failed a request."""


class LLMUnavailableError(LLMError):
    """The LLM endpoint cannot be reached or timed out."""


class LLMAuthenticationError(LLMError):
    """The LLM endpoint refused the API key."""


class LLMModelNotFoundError(LLMError):
    """The LLM endpoint does not serve the configured model."""
