// Chinese search queries.
//
// At build time jieba splits the Chinese text of every page into words (the search index
// separates them with U+200B). Material's search worker does not split a Chinese query
// itself: measured on this site, 因果注意力 matched only on its first word 因果, so pages that
// mention only 注意力 were missed. Before a query reaches the worker, each run of Chinese
// characters is split into words with the browser's own Intl.Segmenter, so every word counts.
(() => {
  if (!("Segmenter" in Intl) || typeof Worker === "undefined") return;
  const QUERY = 2; // Material's search message type for a query
  const han = /[\u3400-\u9fff\uf900-\ufaff]+/g;
  const segmenter = new Intl.Segmenter("zh", { granularity: "word" });
  const split = (text) =>
    text.replace(han, (run) => Array.from(segmenter.segment(run), (s) => s.segment).join(" "));
  const post = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (message, ...rest) {
    if (message && message.type === QUERY && typeof message.data === "string") {
      message = { ...message, data: split(message.data) };
    }
    return post.call(this, message, ...rest);
  };
})();
