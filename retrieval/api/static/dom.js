// DOM helpers. Retrieved data (captions, metadata, messages) is untrusted: it only ever becomes
// text nodes or attribute values, never markup.

/**
 * Create an element: props are properties or attributes (aria-*, data-*, for, role), children
 * are nodes or strings (strings become text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) {
      continue;
    }
    if (name === "className") {
      node.className = value;
    } else if (name === "text") {
      node.textContent = String(value);
    } else if (name.startsWith("aria-") || name.startsWith("data-") || name === "role"
      || name === "for" || name === "loading" || name === "decoding") {
      node.setAttribute(name, value === true ? "" : String(value));
    } else {
      node[name] = value;
    }
  }
  append(node, children);
  return node;
}

/** Append nodes and strings (as text) to a parent. */
export function append(parent, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) {
      continue;
    }
    parent.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

/** Remove every child. */
export function clear(node) {
  node.replaceChildren();
  return node;
}

/** Show or hide an element (the hidden attribute). */
export function show(node, visible = true) {
  node.hidden = !visible;
  return node;
}

/** The element with this id (the page's fixed elements, looked up once per module). */
export function byId(id) {
  return document.getElementById(id);
}
