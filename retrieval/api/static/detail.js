// The detail dialog of a hit (a result or a cited item): a larger image (a passage's whole text),
// the id, score, source and every metadata field, and "More like this".

import { byId, clear, el } from "./dom.js";
import { altText, formatScore, hitTitle, isPassage } from "./hits.js";
import { release, setImage, sized } from "./images.js";

const DETAIL_SIZE = 512;

const ui = {
  dialog: byId("detail"),
  image: byId("detail-image"),
  passage: null, // the text block shown instead of the image for a text passage
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
  ui.title.textContent = hitTitle(hit);
  ui.image.alt = altText(hit);
  showPassage(isPassage(hit) ? hit.caption : null);
  if (!isPassage(hit)) {
    setImage(ui.image, sized(hit.thumbnail_url, DETAIL_SIZE), { eager: true });
  }
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
  const metadata = { ...(hit.metadata || {}) };
  rows.push(...photoRows(metadata)); // takes the keys it shows out of metadata
  for (const [key, value] of Object.entries(metadata)) {
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

/** The passage's text in place of the image (text null: the image again). */
function showPassage(text) {
  if (!ui.passage) {
    ui.passage = el("blockquote", { id: "detail-passage", className: "detail-passage" });
    ui.image.after(ui.passage);
  }
  ui.passage.textContent = text || "";
  ui.passage.hidden = text === null;
  ui.image.hidden = text !== null;
}

/** A photo's file and EXIF fields (folder ingests) as labelled rows; shown keys are removed. */
function photoRows(metadata) {
  const take = (...keys) => keys.map((key) => {
    const value = metadata[key];
    delete metadata[key];
    return value;
  });
  const rows = [];
  const [name, folder] = take("name", "folder");
  if (typeof name === "string" && name) {
    rows.push(["file", folder ? `${folder}/${name}` : name]);
  }
  const [taken] = take("taken");
  rows.push(["taken", taken]);
  const [make, model] = take("camera_make", "camera_model");
  const camera = typeof model === "string" && typeof make === "string" && model.startsWith(make)
    ? model : [make, model].filter((part) => typeof part === "string" && part).join(" ");
  rows.push(["camera", camera]);
  const [width, height] = take("width", "height");
  if (typeof width === "number" && typeof height === "number") {
    rows.push(["dimensions", `${width} × ${height} px`]);
  }
  const [lat, lon] = take("gps_lat", "gps_lon");
  if (typeof lat === "number" && typeof lon === "number") {
    rows.push(["location", `${lat.toFixed(5)}, ${lon.toFixed(5)}`]);
  }
  const [size, modified, orientation] = take("size", "modified", "orientation");
  if (typeof size === "number") {
    rows.push(["file size", formatBytes(size)]);
  }
  rows.push(["modified", modified]);
  if (typeof orientation === "number") {
    rows.push(["EXIF orientation", String(orientation)]);
  }
  return rows;
}

function formatBytes(bytes) {
  const units = ["bytes", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
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
