// The proof-of-work widget's only algorithm, PBKDF2/SHA-256, runs in a
// worker served by the form itself; once the page has loaded, every widget
// starts solving its challenge.
globalThis.$altcha.algorithms.set("PBKDF2/SHA-256", () => new Worker("/altcha/pbkdf2.js"));
window.addEventListener("load", () => {
  for (const widget of document.querySelectorAll("altcha-widget")) {
    widget.verify();
  }
});
