// How a hit (a search result or a chat citation) is shown wherever it appears: its alt text,
// its score and its thumbnail (a text passage shows its text where an image would be).

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

/** Whether a hit is a passage of a text document (its caption is its text; no image). */
export function isPassage(hit) {
  return hit.modality === "text";
}

/** A passage's document and position: "notes.md, passage 2 of 5". */
export function passageLabel(hit) {
  const meta = hit.metadata || {};
  const source = typeof hit.source === "string" ? hit.source : "";
  const name = source.split(/[\\/]/).filter(Boolean).pop() || "text";
  if (typeof meta.passage !== "number") {
    return name;
  }
  const of = typeof meta.passages === "number" ? ` of ${meta.passages}` : "";
  return `${name}, passage ${meta.passage + 1}${of}`;
}

/** What a hit is called: a passage's document, else its caption, file name or id. */
export function hitTitle(hit) {
  if (isPassage(hit)) {
    return passageLabel(hit);
  }
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

/** The hit's image from path, drawn at size × size CSS pixels (marked when it fails); a text
 *  passage is its text instead, filling the same box. */
export function hitImage(hit, path, size) {
  if (isPassage(hit)) {
    return el("span", { className: "passage-text", text: hit.caption });
  }
  const img = el("img", { alt: altText(hit), width: size, height: size, decoding: "async" });
  img.addEventListener("error", () => markBroken(img));
  setImage(img, path);
  return img;
}
