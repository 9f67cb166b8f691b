// The two views, Search and Chat: the tabs switch between them and the URL's #search / #chat
// remembers which one is shown.

import { byId, show } from "./dom.js";

const tabs = { search: byId("tab-search"), chat: byId("tab-chat") };
const views = { search: byId("view-search"), chat: byId("view-chat") };

export function showView(name, { updateHash = true } = {}) {
  for (const [key, tab] of Object.entries(tabs)) {
    const active = key === name;
    tab.setAttribute("aria-pressed", String(active));
    show(views[key], active);
  }
  document.body.dataset.view = name;
  if (updateHash) {
    history.replaceState(null, "", name === "chat" ? "#chat" : "#search");
  }
}

/** The tabs, and the view the URL asks for. */
export function wireViews() {
  tabs.search.addEventListener("click", () => showView("search"));
  tabs.chat.addEventListener("click", () => showView("chat"));
  showView(location.hash === "#chat" ? "chat" : "search", { updateHash: false });
}
