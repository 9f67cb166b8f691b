// Errors as the API words them ({"error": {"type", "message"}}): title, message, type and HTTP
// status, with an "Enter API key" button when the server wants a key.

import { ApiError } from "./api.js";
import { clear, el, show } from "./dom.js";
import { changeKey } from "./key.js";

export function messageOf(error) {
  return error instanceof ApiError || error instanceof Error ? error.message : String(error);
}

/** Fill an error box with the error and show it. */
export function showError(box, title, error) {
  clear(box);
  const type = error instanceof ApiError && error.type ? error.type : "";
  box.append(el("p", { className: "error-title", text: title }),
    el("p", { className: "error-message", text: messageOf(error) }));
  if (type) {
    box.append(el("p", { className: "error-type",
      text: `${type}${error.status ? ` · HTTP ${error.status}` : ""}` }));
  }
  if (error instanceof ApiError && error.status === 401) {
    const button = el("button", { type: "button", className: "ghost small",
      text: "Enter API key" });
    button.addEventListener("click", changeKey);
    box.append(button);
  }
  show(box);
}
