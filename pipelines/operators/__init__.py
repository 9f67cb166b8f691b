"""mmrag's built-in operators, registered under towhee's names on import."""

from pipelines.operators import ann, clip, image_decode, normalize

__all__ = ["ann", "clip", "image_decode", "normalize"]
