// The detail dialog of a hit (a result or a cited item): a larger image, the id, score, source
// and every metadata field, and "More like this".

import { byId, clear, el } from "./dom.js";
import { altText, formatScore } from "./hits.js";
import { release, setImage, sized } from "./images.js";

const DETAIL_SIZE = 512;

const ui = {
  dialog: byId("detail"),
  image: byId("detail-image"),
  title: byId("detail-title"),
  meta: byId("detail-meta"),
  similar: byId("detail-similar"),
  close: byId("detail-close"),
};

const state = {
  hit: null, // the hit shown (kept after closing, for "More like this")
  opener: null, // the button that opened the dialog: focus returns to it
};

/** Show a hit in the dialog; opener gets the focus back when it closes. */
export function openDetail(hit, opener) {
  state.hit = hit;
  state.opener = opener;
  ui.title.textContent = hit.caption || "(no caption)";
  ui.image.alt = altText(hit);
  setImage(ui.image, sized(hit.thumbnail_url, DETAIL_SIZE), { eager: true });
  clear(ui.meta);
  const rows = [["id", hit.id]];
  if (typeof hit.score === "number") {
    rows.push(["score", formatScore(hit.score)]);
  }
  if (hit.n) {
    rows.push(["cited as", `[${hit.n}]`]);
  }
  rows.push(["source", hit.source]);
  if (hit.modality) {
    rows.push(["modality", hit.modality]);
  }
  for (const [key, value] of Object.entries(hit.metadata || {})) {
    rows.push([key, typeof value === "string" ? value : JSON.stringify(value)]);
  }
  for (const [key, value] of rows) {
    if (value !== undefined && value !== null && value !== "") {
      ui.meta.append(el("dt", { text: key }), el("dd", { text: value }));
    }
  }
  ui.dialog.showModal();
  ui.similar.focus();
}

function closeDetail() {
  ui.dialog.close();
}

function onDetailClosed() {
  release(ui.image);
  const opener = state.opener;
  state.opener = null;
  if (opener && opener.isConnected) {
    opener.focus();
  }
}

/** Close, Escape and backdrop clicks; "More like this" closes and calls onMoreLikeThis(hit). */
export function wireDetail({ onMoreLikeThis }) {
  ui.similar.addEventListener("click", () => {
    const hit = state.hit;
    if (!hit) {
      return;
    }
    state.opener = null; // the focus goes to the new search, not back to the opener
    closeDetail();
    onMoreLikeThis(hit);
  });
  ui.close.addEventListener("click", closeDetail);
  ui.dialog.addEventListener("close", onDetailClosed);
  ui.dialog.addEventListener("click", (event) => {
    if (event.target === ui.dialog) {
      closeDetail(); // a click on the backdrop
    }
  });
}
