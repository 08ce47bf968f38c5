// MathJax 3, served from this site (assets/mathjax, copied by tools/site_hooks.py).
//
// Math lives in two kinds of element:
//   * Markdown pages: pymdownx.arithmatex wraps each formula in .arithmatex as \( \) or \[ \];
//   * notebook pages: mkdocs-jupyter leaves $...$ and $$...$$ in the paragraphs of
//     .jp-RenderedMarkdown (the Markdown cells).
// Only those elements are typeset, so a "$" in code, in cell outputs or in ordinary prose is
// never mistaken for math. (Material's documented setup, ignoreHtmlClass ".*|", would ignore
// every element below a processed one, and so every formula inside a notebook paragraph.)
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  options: { ignoreHtmlClass: "tex2jax_ignore" },
  startup: { typeset: false }
};

const bookMathContainers = () =>
  Array.from(document.querySelectorAll(".arithmatex, .jp-RenderedMarkdown"));

document$.subscribe(() => {
  MathJax.startup.promise.then(() => {
    MathJax.startup.output.clearCache();
    MathJax.typesetClear();
    MathJax.texReset();
    return MathJax.typesetPromise(bookMathContainers());
  }).then(() => { document.body.dataset.mathTypeset = "done"; });
});
