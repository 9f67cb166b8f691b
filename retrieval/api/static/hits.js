// How a hit (a search result or a chat citation) is shown wherever it appears: its alt text,
// its score and its thumbnail.

import { el } from "./dom.js";
import { markBroken, setImage } from "./images.js";

export const CITE_SIZE = 96; // thumbnails of citations and of the "more like this" item

/** The file name a hit came from: its stored name, else the last part of its source. */
export function fileName(hit) {
  const name = hit.metadata && typeof hit.metadata.name === "string" ? hit.metadata.name : "";
  if (name) {
    return name;
  }
  const source = typeof hit.source === "string" ? hit.source.replace(/[?#].*$/, "") : "";
  return source.split(/[\\/]/).filter(Boolean).pop() || "";
}

/** What a hit is called: its caption, else its file name, else its id. */
export function hitTitle(hit) {
  return hit.caption || fileName(hit) || `Item ${hit.id}`;
}

export function altText(hit) {
  if (hit.caption) {
    return hit.caption;
  }
  const name = fileName(hit);
  return name ? `${name} (no caption)` : `Item ${hit.id} (no caption)`;
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
