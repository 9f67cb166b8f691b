// Images from the API: a plain lazy <img src> when no key is stored; with a key, fetched with it
// (when scrolled near) and shown as a blob: URL, released again when the image goes away.

import { apiUrl, getKey, imageObjectUrl } from "./api.js";
import { withKey } from "./key.js";

const lazyObserver = "IntersectionObserver" in window
  ? new IntersectionObserver(onVisible, { rootMargin: "400px" })
  : null;

function onVisible(entries) {
  for (const entry of entries) {
    if (entry.isIntersecting) {
      lazyObserver.unobserve(entry.target);
      loadKeyed(entry.target);
    }
  }
}

async function loadKeyed(img) {
  const path = img.dataset.src;
  try {
    const url = await withKey(() => imageObjectUrl(path), { prompt: false });
    if (img.dataset.src === path && img.isConnected) {
      img.src = url;
    } else {
      URL.revokeObjectURL(url);
    }
  } catch {
    markBroken(img);
  }
}

/** Mark an image (and its frame) as failed to load. */
export function markBroken(img) {
  img.classList.add("broken");
  const frame = img.closest(".thumb, .cite-thumb, .detail-image-wrap");
  if (frame) {
    frame.classList.add("broken");
  }
}

/** Show an API image: a plain lazy <img src> without a key, fetched with the key otherwise. */
export function setImage(img, path, { eager = false } = {}) {
  release(img);
  img.dataset.src = path;
  img.classList.remove("broken");
  if (!getKey()) {
    img.loading = eager ? "eager" : "lazy";
    img.src = apiUrl(path);
  } else if (lazyObserver && !eager) {
    lazyObserver.observe(img);
  } else {
    loadKeyed(img);
  }
}

/** Stop loading an image and free its blob: URL. */
export function release(img) {
  if (lazyObserver) {
    lazyObserver.unobserve(img);
  }
  if (img.src.startsWith("blob:")) {
    URL.revokeObjectURL(img.src);
  }
  img.removeAttribute("src");
}

/** Release every image under root (before its content is replaced). */
export function releaseAll(root) {
  for (const img of root.querySelectorAll("img")) {
    release(img);
  }
}

/** An image URL of the API at another thumbnail size. */
export function sized(path, size) {
  const url = new URL(path, document.baseURI);
  url.searchParams.set("size", String(size));
  return url.pathname + url.search;
}
