// Reviewer workspace: keyboard shortcuts and focus after htmx swaps.
(function () {
  "use strict";
  function typing(target) {
    return target.closest("input, textarea, select, [contenteditable]") !== null;
  }
  function choose(verdict) {
    var radio = document.querySelector('input[data-verdict="' + verdict + '"]');
    if (!radio) return;
    radio.checked = true;
    var rationale = document.getElementById("rationale");
    if (rationale) rationale.focus();
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (event.key === "a") { choose("approve"); event.preventDefault(); }
    else if (event.key === "r") { choose("reject"); event.preventDefault(); }
    else if (event.key === "e") {
      var field = document.querySelector("[data-edit-field]");
      if (field) { field.focus(); field.select(); event.preventDefault(); }
    } else if (event.key === "n") {
      var next = document.getElementById("next-form");
      if (next) { next.requestSubmit(); event.preventDefault(); }
    } else if (event.key === "?") {
      var legend = document.getElementById("shortcuts");
      if (legend) { legend.hidden = !legend.hidden; event.preventDefault(); }
    }
  });
  // After htmx swaps a panel, move focus to its message so screen readers hear it.
  // Only the values panel's own swaps move focus: the nav bell polls with htmx too,
  // and must never pull focus away from what the reviewer is typing.
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var target = event.detail.target;
    if (!target || target.id !== "values-panel") return;
    var focus = document.querySelector("#values-panel [data-focus]");
    if (focus) focus.focus();
  });
  var error = document.getElementById("workspace-error");
  if (error) error.focus();
})();
