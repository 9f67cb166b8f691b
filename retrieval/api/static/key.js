// The API key: when the server answers 401, ask for the key, check it at once and keep it (api.js
// stores it). keyEvents tells the page when a key was accepted ("accepted") and when the user
// changed it through the "API key" button or an error's "Enter API key" ("changed").

import { ApiError, clearKey, getJson, getKey, isKeyRemembered, setKey } from "./api.js";
import { byId, show } from "./dom.js";

const KEY_NEEDED = "This server needs an API key: use the “API key” button at the top to "
  + "enter it.";

const ui = {
  keyButton: byId("key-button"),
  keyDialog: byId("key-dialog"),
  keyForm: byId("key-form"),
  keyMessage: byId("key-message"),
  keyInput: byId("key-input"),
  keyRemember: byId("key-remember"),
  keyError: byId("key-error"),
  keyForget: byId("key-forget"),
  keyCancel: byId("key-cancel"),
};

/** Events: "accepted" (the dialog's key was checked and kept), "changed" (see changeKey). */
export const keyEvents = new EventTarget();

// The open dialog: every caller that needs the key waits on the same answer.
const pending = { answer: null, resolve: null };

/**
 * Run an API call; on 401 ask for the key and try again (until it works or the user cancels).
 * Background calls pass prompt: false (they fail with the message instead of asking).
 */
export async function withKey(task, { prompt = true } = {}) {
  for (;;) {
    try {
      return await task();
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 401) {
        throw error;
      }
      markKeyRequired();
      if (!prompt) {
        throw new ApiError(401, "unauthorized", KEY_NEEDED);
      }
      const refused = Boolean(getKey());
      const ok = await askForKey(refused
        ? "The server refused the stored API key. Enter the right one."
        : "This server needs an API key. It is kept in this browser and sent with every "
          + "request.");
      if (!ok) {
        throw new ApiError(401, "unauthorized", KEY_NEEDED);
      }
    }
  }
}

/** Ask for a new key; when one is given, the page reloads what it shows ("changed"). */
export async function changeKey() {
  const ok = await askForKey("Enter the API key for this server.");
  if (ok) {
    keyEvents.dispatchEvent(new Event("changed"));
  }
}

function markKeyRequired() {
  show(ui.keyButton);
}

function askForKey(message) {
  if (pending.answer) {
    return pending.answer;
  }
  pending.answer = new Promise((resolve) => {
    pending.resolve = resolve;
  });
  ui.keyMessage.textContent = message;
  ui.keyError.textContent = "";
  ui.keyInput.value = "";
  show(ui.keyForget, Boolean(getKey()));
  ui.keyDialog.showModal();
  ui.keyInput.focus();
  return pending.answer;
}

function finishKeyPrompt(ok) {
  const resolve = pending.resolve;
  pending.answer = null;
  pending.resolve = null;
  if (ui.keyDialog.open) {
    ui.keyDialog.close();
  }
  if (resolve) {
    resolve(ok);
  }
}

async function saveKey(event) {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) {
    ui.keyError.textContent = "Enter the API key.";
    ui.keyInput.focus();
    return;
  }
  const previous = getKey();
  const previousRemembered = isKeyRemembered();
  setKey(key, ui.keyRemember.checked);
  ui.keyError.textContent = "Checking the key…";
  try {
    await getJson("stats");
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      if (previous) {
        setKey(previous, previousRemembered);
      } else {
        clearKey();
      }
      ui.keyError.textContent = `The server refused this key: ${error.message}`;
      ui.keyInput.select();
      return;
    }
    // any other failure (e.g. not ready yet) is not about the key: keep it
  }
  ui.keyError.textContent = "";
  finishKeyPrompt(true);
  keyEvents.dispatchEvent(new Event("accepted"));
}

/** The key dialog and the header's "API key" button (shown at once when a key is stored). */
export function wireKeyDialog() {
  ui.keyForm.addEventListener("submit", saveKey);
  ui.keyCancel.addEventListener("click", () => finishKeyPrompt(false));
  ui.keyForget.addEventListener("click", () => {
    clearKey();
    ui.keyError.textContent = "The key was forgotten.";
    show(ui.keyForget, false);
  });
  ui.keyDialog.addEventListener("cancel", (event) => {
    event.preventDefault();
    finishKeyPrompt(false);
  });
  ui.keyButton.addEventListener("click", changeKey);
  if (getKey()) {
    markKeyRequired();
  }
}
