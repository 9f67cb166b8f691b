"""``--shard i/n``: a deterministic 1/n of a source, chosen by hashing each item's key.

The key is known before any byte is read: the manifest ``id`` when there is one, else the
``path``/``url`` as written in the manifest, or the path relative to the ingested folder. So n
jobs on n machines split the work without reading each other's files, and agree even when the
data is mounted at different places. Content-hash ids are not known before reading, so they
cannot be the key; the same bytes under two keys may then be read by two shards, but both
compute the same id and the collection (upsert by id) still holds the exact union, once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from retrieval.errors import ConfigError

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*\Z")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``; the default 0/1 owns everything."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                f"shard {self.index}/{self.count} is invalid: need 0 <= i < n (e.g. 0/3, 1/3, 2/3)"
            )

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Parse ``"i/n"``; a ConfigError explains the format otherwise."""
        match = _SHARD.match(text or "")
        if match is None:
            raise ConfigError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4), not {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def label(self) -> str:
        """``"i/n"``."""
        return f"{self.index}/{self.count}"

    def owns(self, key: str) -> bool:
        """Whether this shard takes the item with this key."""
        if self.count == 1:
            return True
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        return int.from_bytes(digest, "big") % self.count == self.index
