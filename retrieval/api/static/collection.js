// The collection shown: its summary in the header (GET /stats) and its filterable fields
// (GET /fields). Its status says whether loading failed (then a new key reloads it).

import { getJson } from "./api.js";
import { byId, show } from "./dom.js";
import { messageOf, showError } from "./errors.js";
import { fieldsUnavailable, renderFields } from "./filters.js";
import { withKey } from "./key.js";

const ui = { info: byId("collection-info"), error: byId("search-error") };

let status = "loading"; // "loading" | "loaded" | "failed": the header and filter fields

export function collectionStatus() {
  return status;
}

export async function loadCollection() {
  status = "loading";
  let ok = true;
  try {
    const stats = await withKey(() => getJson("stats"));
    ui.info.textContent = `${stats.collection} · ${stats.count} items · `
      + `${stats.query_model || stats.model}`;
    show(ui.error, false);
  } catch (error) {
    ok = false;
    ui.info.textContent = "";
    showError(ui.error, "Could not load the collection", error);
  }
  try {
    const fields = await withKey(() => getJson("fields"), { prompt: false });
    renderFields(fields.fields || []);
  } catch (error) {
    ok = false;
    fieldsUnavailable(messageOf(error));
  }
  status = ok ? "loaded" : "failed";
}
