// The API client of the web UI: JSON calls, multipart uploads, the chat SSE stream, images.
// Every data request carries the API key (X-API-Key) when one is stored; errors become
// ApiError with the API's own {"error": {"type", "message"}} text.

const KEY_NAME = "mmrag.apiKey";

export class ApiError extends Error {
  constructor(status, type, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
  }
}

function storageGet(storage) {
  try {
    return storage.getItem(KEY_NAME) || "";
  } catch {
    return ""; // storage disabled (privacy mode): the key lives in memory only
  }
}

let memoryKey = "";

export function getKey() {
  return memoryKey || storageGet(window.sessionStorage) || storageGet(window.localStorage);
}

/** Whether the key is kept on this device (localStorage), not just for this tab. */
export function isKeyRemembered() {
  return Boolean(storageGet(window.localStorage));
}

export function setKey(key, remember) {
  memoryKey = key;
  try {
    window.sessionStorage.setItem(KEY_NAME, key);
    if (remember) {
      window.localStorage.setItem(KEY_NAME, key);
    } else {
      window.localStorage.removeItem(KEY_NAME);
    }
  } catch {
    // kept in memory only
  }
}

export function clearKey() {
  memoryKey = "";
  try {
    window.sessionStorage.removeItem(KEY_NAME);
    window.localStorage.removeItem(KEY_NAME);
  } catch {
    // nothing stored
  }
}

function headers(extra = {}) {
  const out = new Headers(extra);
  const key = getKey();
  if (key) {
    out.set("X-API-Key", key);
  }
  return out;
}

/**
 * Resolve a URL against the page: the UI's own calls are relative ("search"), so they work
 * under a proxy prefix; URLs the API returns ("/items/...") already carry the root path.
 */
export function apiUrl(path) {
  return new URL(path, document.baseURI).toString();
}

async function errorOf(response) {
  let type = "http_error";
  let message = `${response.status} ${response.statusText || "error"}`.trim();
  try {
    const body = await response.json();
    if (body && body.error && typeof body.error.message === "string") {
      type = String(body.error.type || type);
      message = body.error.message;
    } else if (body && typeof body.detail === "string") {
      message = body.detail;
    }
  } catch {
    // not JSON (a proxy's error page): keep the status line
  }
  return new ApiError(response.status, type, message);
}

async function send(path, init) {
  let response;
  try {
    response = await fetch(apiUrl(path), init);
  } catch (error) {
    if (error && error.name === "AbortError") {
      throw error;
    }
    throw new ApiError(0, "network_error", "The server could not be reached. Is it running?");
  }
  if (!response.ok) {
    throw await errorOf(response);
  }
  return response;
}

/** GET a JSON resource. */
export async function getJson(path, { signal } = {}) {
  const response = await send(path, { headers: headers({ Accept: "application/json" }), signal });
  return response.json();
}

/** POST a JSON body, answer JSON. */
export async function postJson(path, body, { signal } = {}) {
  const response = await send(path, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "application/json" }),
    body: JSON.stringify(body),
    signal,
  });
  return response.json();
}

/** POST an image file with search options as multipart/form-data. */
export async function postImage(path, file, options, { signal } = {}) {
  const form = new FormData();
  form.append("file", file, file.name || "image");
  for (const [name, value] of Object.entries(options)) {
    if (value === undefined || value === null) {
      continue;
    }
    form.append(name, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  const response = await send(path, {
    method: "POST",
    headers: headers({ Accept: "application/json" }),
    body: form,
    signal,
  });
  return response.json();
}

/** POST /chat with stream=true; yields {event, data} for every Server-Sent Event. */
export async function* streamChat(body, { signal } = {}) {
  const response = await send("chat", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  yield* readEvents(response);
}

/** Every Server-Sent Event of a response body as {event, data} (data parsed as JSON). */
export async function* readEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
      buffer = buffer.replace(/\r\n?/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = parseEvent(block);
        if (event) {
          yield event;
        }
      }
      if (done) {
        return;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") {
      event = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  if (!data.length) {
    return null;
  }
  try {
    return { event, data: JSON.parse(data.join("\n")) };
  } catch {
    return { event, data: data.join("\n") };
  }
}

/** An object URL of an image fetched with the API key (for <img> when a key is needed). */
export async function imageObjectUrl(path, { signal } = {}) {
  const response = await send(path, { headers: headers({ Accept: "image/*" }), signal });
  return URL.createObjectURL(await response.blob());
}
