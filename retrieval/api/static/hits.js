// How a hit (a search result or a chat citation) is shown wherever it appears: its alt text,
// its score and its thumbnail.

import { el } from "./dom.js";
import { markBroken, setImage } from "./images.js";

export const CITE_SIZE = 96; // thumbnails of citations and of the "more like this" item

export function altText(hit) {
  return hit.caption ? hit.caption : `Item ${hit.id} (no caption)`;
}

export function formatScore(score) {
  return typeof score === "number" ? score.toFixed(3) : "";
}

/** The hit's image from path, drawn at size × size CSS pixels (marked when it fails). */
export function hitImage(hit, path, size) {
  const img = el("img", { alt: altText(hit), width: size, height: size, decoding: "async" });
  img.addEventListener("error", () => markBroken(img));
  setImage(img, path);
  return img;
}
