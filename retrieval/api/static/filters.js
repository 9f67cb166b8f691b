// The metadata filters: one control per field of the collection (GET /fields): a choice list
// when the field has few values, a from/to range for numbers, "contains" for other text, plus
// "caption contains". The filter applies to search and chat alike.

import { byId, clear, el } from "./dom.js";

const ui = {
  fields: byId("filter-fields"),
  count: byId("filter-count"),
  note: byId("filters-note"),
  clear: byId("filter-clear"),
  chatNote: byId("chat-filter-note"),
};

let controls = []; // {name, read() -> condition | undefined, reset()} per control shown

/** Show a control for each field (GET /fields' fields). */
export function renderFields(fields) {
  clear(ui.fields);
  controls = [];
  const metadata = fields.filter((f) => f.kind === "metadata");
  ui.note.textContent = metadata.length
    ? "Only results matching every filter are shown (search and chat)."
    : "This collection has no metadata fields; filter on the caption.";
  metadata.forEach((field, index) => addFieldControl(field, index));
  addTextControl({ name: "caption", label: "caption contains" }, metadata.length);
  updateFilterCount();
}

/** Say why there are no filters. */
export function fieldsUnavailable(message) {
  ui.note.textContent = `Filters are unavailable: ${message}`;
}

function addFieldControl(field, index) {
  const id = `filter-${index}`;
  const types = field.types || [];
  if (types.length === 1 && types[0] === "number" && !field.values) {
    const from = el("input", { id: `${id}-min`, type: "number", step: "any", inputMode: "decimal" });
    const to = el("input", { id: `${id}-max`, type: "number", step: "any", inputMode: "decimal" });
    const box = el("fieldset", { className: "filter range" },
      el("legend", { text: field.name }),
      el("label", { for: from.id, text: "from" }), from,
      el("label", { for: to.id, text: "to" }), to);
    ui.fields.append(box);
    controls.push({
      name: field.name,
      read() {
        const condition = {};
        if (from.value !== "" && Number.isFinite(Number(from.value))) {
          condition.gte = Number(from.value);
        }
        if (to.value !== "" && Number.isFinite(Number(to.value))) {
          condition.lte = Number(to.value);
        }
        return Object.keys(condition).length ? condition : undefined;
      },
      reset() {
        from.value = "";
        to.value = "";
      },
    });
    return;
  }
  if (field.values && field.values.length) {
    const select = el("select", { id, name: field.name },
      el("option", { value: "", text: "any" }),
      field.values.map((value, i) => el("option", { value: String(i), text: String(value) })));
    ui.fields.append(el("div", { className: "filter" },
      el("label", { for: id, text: field.name }), select));
    controls.push({
      name: field.name,
      read: () => (select.value === "" ? undefined : field.values[Number(select.value)]),
      reset() {
        select.value = "";
      },
    });
    return;
  }
  addTextControl({ name: field.name, label: `${field.name} contains` }, index,
    types.length === 1 && types[0] === "string");
}

function addTextControl({ name, label }, index, contains = true) {
  const id = `filter-${index}-text`;
  const input = el("input", { id, type: "text", autocomplete: "off", spellcheck: false });
  ui.fields.append(el("div", { className: "filter" }, el("label", { for: id, text: label }),
    input));
  controls.push({
    name,
    read() {
      const text = input.value.trim();
      if (!text) {
        return undefined;
      }
      return contains ? { contains: text } : text;
    },
    reset() {
      input.value = "";
    },
  });
}

/** The API's filter object for the controls as set (null when none is). */
export function currentFilter() {
  const filter = {};
  for (const control of controls) {
    const condition = control.read();
    if (condition !== undefined) {
      filter[control.name] = condition;
    }
  }
  return Object.keys(filter).length ? filter : null;
}

function updateFilterCount() {
  const filter = currentFilter();
  const count = filter ? Object.keys(filter).length : 0;
  ui.count.textContent = count ? `${count} on` : "";
  ui.chatNote.textContent = count
    ? `Filters on: ${Object.keys(filter).join(", ")}`
    : "";
}

/** Reset every control (the caller then acts on the change, like onChange of wireFilters). */
export function clearFilters() {
  for (const control of controls) {
    control.reset();
  }
  updateFilterCount();
}

/** Call onChange after any control changes and after "Clear filters". */
export function wireFilters(onChange) {
  ui.fields.addEventListener("change", () => { // every control's change bubbles up to here
    updateFilterCount();
    onChange();
  });
  ui.clear.addEventListener("click", () => {
    clearFilters();
    onChange();
  });
}
