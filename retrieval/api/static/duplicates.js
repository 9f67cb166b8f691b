// The Duplicates view: groups of near-identical images (GET /duplicates), a page at a time.
// Each group is a row of thumbnails with its size and similarity range; a thumbnail opens the
// detail dialog. The threshold is the cosine similarity a pair needs, within (0, 1].

import { getJson } from "./api.js";
import { byId, clear, el, show } from "./dom.js";
import { showError } from "./errors.js";
import { CITE_SIZE, hitImage, hitTitle } from "./hits.js";
import { openDetail } from "./detail.js";
import { releaseAll } from "./images.js";
import { withKey } from "./key.js";

const PAGE_SIZE = 12;

const ui = {
  form: byId("dup-form"),
  threshold: byId("dup-threshold"),
  status: byId("dup-status"),
  error: byId("dup-error"),
  groups: byId("dup-groups"),
  pager: byId("dup-pager"),
  previous: byId("dup-previous"),
  next: byId("dup-next"),
  page: byId("dup-page"),
};

const state = { page: 1, threshold: 0.95, loaded: false, request: 0 };

function formatSimilarity(group) {
  const low = group.min_score.toFixed(3);
  const high = group.max_score.toFixed(3);
  return low === high ? low : `${low}–${high}`;
}

function renderGroup(group, number) {
  const items = group.members.map((member) => {
    const hit = { ...member, metadata: {}, modality: "image" };
    const button = el("button", { type: "button", className: "dup-member",
      title: hitTitle(hit), "aria-label": `Open ${hitTitle(hit)}` },
      hitImage(hit, member.thumbnail_url, CITE_SIZE * 1.5),
      el("span", { className: "dup-name", text: hitTitle(hit) }));
    button.addEventListener("click", () => openDetail(hit, button));
    return el("li", {}, button);
  });
  return el("li", { className: "dup-group", "data-size": group.size },
    el("h2", { className: "dup-title",
      text: `Group ${number}: ${group.size} images · similarity ${formatSimilarity(group)}` }),
    el("ul", { className: "dup-members", "aria-label": `Group ${number}` }, items));
}

function render(answer) {
  releaseAll(ui.groups);
  clear(ui.groups);
  const first = (answer.page - 1) * answer.page_size;
  answer.groups.forEach((group, index) => ui.groups.append(renderGroup(group, first + index + 1)));
  const pages = Math.max(1, Math.ceil(answer.total_groups / answer.page_size));
  if (!answer.total_groups) {
    ui.status.textContent = `No near-duplicates among ${answer.scanned} images at `
      + `${answer.threshold}. A lower threshold finds more heavily edited copies.`;
  } else {
    ui.status.textContent = `${answer.total_groups} groups (${answer.total_images} images) `
      + `among ${answer.scanned} images at ${answer.threshold}.`;
  }
  ui.page.textContent = `Page ${answer.page} of ${pages}`;
  ui.previous.disabled = answer.page <= 1;
  ui.next.disabled = answer.page >= pages;
  show(ui.pager, answer.total_groups > answer.page_size);
}

async function load(page) {
  const request = ++state.request;
  state.page = page;
  show(ui.error, false);
  ui.status.textContent = "Looking for near-duplicates…";
  const query = new URLSearchParams({ threshold: String(state.threshold), page: String(page),
    page_size: String(PAGE_SIZE) });
  try {
    const answer = await withKey(() => getJson(`duplicates?${query}`));
    if (request === state.request) {
      render(answer);
    }
  } catch (error) {
    if (request === state.request) {
      ui.status.textContent = "";
      showError(ui.error, "Could not find duplicates", error);
    }
  }
}

/** Load the first page the first time the view is shown. */
export function showDuplicates() {
  if (!state.loaded) {
    state.loaded = true;
    load(1);
  }
}

export function wireDuplicates() {
  ui.form.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = Number(ui.threshold.value);
    if (!(value > 0 && value <= 1)) {
      showError(ui.error, "Check the threshold",
        new Error("The threshold is a similarity within (0, 1], e.g. 0.95."));
      return;
    }
    state.threshold = value;
    state.loaded = true;
    load(1);
  });
  ui.previous.addEventListener("click", () => load(Math.max(1, state.page - 1)));
  ui.next.addEventListener("click", () => load(state.page + 1));
}
