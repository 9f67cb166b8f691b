// The chat view: the conversation goes to POST /chat with stream: true; the answer appears token
// by token, then every [n] gets the cited image next to it and the cited items are listed below
// it (each opens the detail dialog). The current filter applies to the retrieval.

import { ApiError, streamChat } from "./api.js";
import { byId, clear, el, show } from "./dom.js";
import { openDetail } from "./detail.js";
import { showError } from "./errors.js";
import { currentFilter } from "./filters.js";
import { CITE_SIZE, hitImage } from "./hits.js";
import { releaseAll, sized } from "./images.js";
import { withKey } from "./key.js";

const CITATION_MARK = /\[(\d+(?:\s*,\s*\d+)*)\]/g;

const ui = {
  log: byId("chat-log"),
  intro: byId("chat-intro"),
  form: byId("chat-form"),
  input: byId("chat-input"),
  send: byId("chat-send"),
  stop: byId("chat-stop"),
  newChat: byId("chat-new"),
  status: byId("chat-status"),
  error: byId("chat-error"),
};

const state = {
  messages: [], // the conversation sent with each question: {role, content}
  controller: null, // the answer being streamed
  scrollPending: false,
};

function addMessage(role) {
  const body = el("div", { className: "msg-body" });
  const item = el("li", { className: `msg msg-${role}` },
    el("p", { className: "who", text: role === "user" ? "You" : "Answer" }), body);
  ui.log.append(item);
  show(ui.intro, false);
  return { item, body };
}

function scrollChat(item) {
  if (state.scrollPending) {
    return;
  }
  state.scrollPending = true;
  requestAnimationFrame(() => {
    state.scrollPending = false;
    item.scrollIntoView({ block: "end" });
  });
}

async function onChatSubmit(event) {
  event.preventDefault();
  if (state.controller) {
    return;
  }
  const text = ui.input.value.trim();
  if (!text) {
    showError(ui.error, "Nothing to ask", new Error("Type a question first."));
    ui.input.focus();
    return;
  }
  show(ui.error, false);
  ui.input.value = "";
  const user = addMessage("user");
  user.body.append(el("p", { text }));
  state.messages.push({ role: "user", content: text });

  const answer = addMessage("assistant");
  answer.item.setAttribute("aria-busy", "true");
  const paragraph = el("p", { className: "answer-text streaming" });
  const streamed = document.createTextNode("");
  paragraph.append(streamed, el("span", { className: "cursor", "aria-hidden": "true" }));
  answer.body.append(paragraph);
  scrollChat(answer.item);

  const controller = new AbortController();
  state.controller = controller;
  setChatBusy(true);
  ui.status.textContent = "Retrieving images and writing the answer…";
  const body = { messages: state.messages, k: 6 };
  const filter = currentFilter();
  if (filter) {
    body.filter = filter;
  }
  let final = null;
  try {
    await withKey(async () => {
      for await (const { event: name, data } of streamChat(body, { signal: controller.signal })) {
        if (name === "token") {
          streamed.appendData(data.delta || "");
          scrollChat(answer.item);
        } else if (name === "citations") {
          final = data;
        } else if (name === "error") {
          const problem = data.error || {};
          throw new ApiError(0, problem.type || "error", problem.message || "the answer failed");
        }
      }
    });
    if (!final) {
      throw new ApiError(0, "incomplete", "The answer stream ended early.");
    }
    renderAnswer(answer.body, final);
    state.messages.push({ role: "assistant", content: final.answer });
    ui.status.textContent = `Answer complete, citing ${final.citations.length} `
      + `image${final.citations.length === 1 ? "" : "s"}.`;
  } catch (error) {
    state.messages.pop(); // the question can be asked again
    paragraph.classList.remove("streaming");
    if (error && error.name === "AbortError") {
      answer.body.append(el("p", { className: "muted", text: "(stopped)" }));
      ui.status.textContent = "Stopped.";
    } else {
      const box = el("div", { className: "error", role: "alert" });
      showError(box, "The answer failed", error);
      answer.body.append(box);
      ui.status.textContent = "";
    }
  } finally {
    answer.item.setAttribute("aria-busy", "false");
    state.controller = null;
    setChatBusy(false);
    scrollChat(answer.item);
  }
}

function setChatBusy(busy) {
  ui.send.disabled = busy;
  show(ui.stop, busy);
  if (!busy && document.activeElement === ui.stop) {
    ui.input.focus();
  }
}

/** The final answer: text with each [n] followed by the cited image, then the cited items. */
function renderAnswer(container, final) {
  releaseAll(container);
  clear(container);
  const byNumber = new Map(final.citations.map((c) => [c.n, c]));
  const paragraph = el("p", { className: "answer-text" });
  const text = final.answer || "";
  let last = 0;
  for (const match of text.matchAll(CITATION_MARK)) {
    paragraph.append(text.slice(last, match.index));
    const marker = el("span", { className: "cite" }, el("span", { className: "cite-n",
      text: match[0] }));
    for (const part of match[1].split(",")) {
      const citation = byNumber.get(Number(part.trim()));
      if (citation) {
        marker.append(citeThumb(citation));
      }
    }
    paragraph.append(marker);
    last = match.index + match[0].length;
  }
  paragraph.append(text.slice(last));
  container.append(paragraph);
  container.classList.toggle("with-citations", final.citations.length > 0);
  if (final.citations.length) {
    const list = el("ul", { className: "cited", "aria-label": "Cited images" });
    for (const citation of final.citations) {
      list.append(el("li", {}, citedCard(citation)));
    }
    container.append(list);
  }
  if (final.model) {
    container.append(el("p", { className: "muted small-print",
      text: `Model: ${final.model}` }));
  }
}

function citeThumb(citation) {
  const img = hitImage(citation, sized(citation.thumbnail_url, CITE_SIZE), 40);
  const button = el("button", { type: "button", className: "cite-thumb",
    title: `[${citation.n}] ${citation.caption || citation.id}` }, img);
  button.addEventListener("click", () => openDetail(citation, button));
  return button;
}

function citedCard(citation) {
  const img = hitImage(citation, sized(citation.thumbnail_url, CITE_SIZE), 96);
  const button = el("button", { type: "button", className: "cited-card" },
    el("span", { className: "thumb" }, img),
    el("span", { className: "cited-n", "aria-hidden": "true", text: `[${citation.n}]` }),
    el("span", { className: "card-caption", "aria-hidden": "true",
      text: citation.caption || "(no caption)" }));
  button.addEventListener("click", () => openDetail(citation, button));
  return button;
}

function newConversation() {
  if (state.controller) {
    state.controller.abort();
  }
  state.messages = [];
  releaseAll(ui.log);
  clear(ui.log);
  show(ui.error, false);
  show(ui.intro);
  ui.status.textContent = "New conversation.";
  ui.input.focus();
}

/** The chat form (Enter sends, Shift+Enter is a new line), Stop and New conversation. */
export function wireChat() {
  ui.form.addEventListener("submit", onChatSubmit);
  ui.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      ui.form.requestSubmit();
    }
  });
  ui.stop.addEventListener("click", () => state.controller?.abort());
  ui.newChat.addEventListener("click", newConversation);
}
