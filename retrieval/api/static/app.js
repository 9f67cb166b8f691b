// mmrag web UI: text and image search, result details, "more like this", metadata filters and
// a streaming chat that shows the cited images next to the [n] markers. Plain ES modules, no
// build step; everything comes from this server (see the page's Content-Security-Policy).
//
// This module only wires the views together; each view is its own module:
//   search.js (search view)   detail.js (detail dialog)   chat.js (chat view)
//   key.js (API key dialog)   filters.js + collection.js (the collection and its filters)
//   upload.js ("Add images": upload, progress, rejects)
//   duplicates.js (near-duplicate groups)
//   views.js (tabs)   errors.js, hits.js, images.js (shared pieces)   api.js, dom.js (helpers)

import { wireChat } from "./chat.js";
import { collectionStatus, loadCollection } from "./collection.js";
import { wireDetail } from "./detail.js";
import { showDuplicates, wireDuplicates } from "./duplicates.js";
import { wireFilters } from "./filters.js";
import { keyEvents, wireKeyDialog } from "./key.js";
import { refreshSearch, searchLike, wireSearch } from "./search.js";
import { wireUpload } from "./upload.js";
import { onShow, wireViews } from "./views.js";

function init() {
  wireSearch();
  wireFilters(refreshSearch);
  wireDetail({ onMoreLikeThis: searchLike });
  wireKeyDialog();
  keyEvents.addEventListener("accepted", () => {
    if (collectionStatus() === "failed") {
      loadCollection(); // it failed for want of the key
    }
  });
  keyEvents.addEventListener("changed", () => {
    if (collectionStatus() === "loaded") {
      loadCollection(); // (one that failed is being reloaded already: the key was accepted)
    }
    refreshSearch();
  });
  wireChat();
  wireUpload({
    onAdded: () => {
      loadCollection();
      refreshSearch();
    },
  });
  wireDuplicates();
  onShow("duplicates", showDuplicates);
  wireViews();
  document.body.dataset.ready = "true";
  loadCollection();
}

init();
