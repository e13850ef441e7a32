/* The data entry grid: keyboard navigation, and each row saved as a draft when the cursor
 * leaves it (as DHIS2 saves a value), through the same checks as an upload.
 *
 * Arrow keys move between cells (left/right only at the ends of the text), Enter moves down,
 * Shift+Enter up. Each cell shows its state: saved, invalid, warning or locked. No inline
 * script: the CSP is script-src 'self'. Without scripts the grid still posts as a form. */
(function () {
  "use strict";
  var form = document.getElementById("entry-grid");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-save-url");
  var token = form.elements.csrf_token ? form.elements.csrf_token.value : "";
  var cells = Array.prototype.slice.call(form.querySelectorAll("input[data-row]"));
  var byPosition = {};
  cells.forEach(function (input) {
    byPosition[input.dataset.row + ":" + input.dataset.col] = input;
    input.dataset.saved = input.value;
  });

  function cell(row, col) { return byPosition[row + ":" + col]; }

  function move(input, dRow, dCol) {
    var target = cell(Number(input.dataset.row) + dRow, Number(input.dataset.col) + dCol);
    if (target) { target.focus(); target.select(); }
    return Boolean(target);
  }

  form.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input.dataset || input.dataset.row === undefined) { return; }
    var atStart = input.selectionStart === 0 && input.selectionEnd === 0;
    var atEnd = input.selectionStart === input.value.length;
    var moved = false;
    if (event.key === "ArrowDown" || (event.key === "Enter" && !event.shiftKey)) {
      moved = move(input, 1, 0) || event.key === "Enter";
    } else if (event.key === "ArrowUp" || (event.key === "Enter" && event.shiftKey)) {
      moved = move(input, -1, 0) || event.key === "Enter";
    } else if (event.key === "ArrowRight" && atEnd) {
      moved = move(input, 0, 1);
    } else if (event.key === "ArrowLeft" && atStart) {
      moved = move(input, 0, -1);
    }
    if (moved) { event.preventDefault(); }  // Enter never submits the whole grid by accident
  });

  function rowInputs(tr) {
    return Array.prototype.slice.call(tr.querySelectorAll("input[data-field]"));
  }

  function setState(input, state) {
    var td = input.parentNode;
    td.className = "cell-" + state;
    td.dataset.state = state;
    if (state === "invalid") { input.setAttribute("aria-invalid", "true"); }
    else { input.removeAttribute("aria-invalid"); }
  }

  function show(tr, result) {
    var status = tr.querySelector(".row-status");
    var summary = status.querySelector(".summary");
    var list = status.querySelector(".cell-problems");
    if (result.summary && result.status !== "invalid") { summary.textContent = result.summary; }
    var shown = tr.querySelector("td.shown");
    if (shown && result.status === "saved") { shown.textContent = result.shown || ""; }
    if (result.status === "invalid") { summary.textContent = "not saved: fix the cells in red"; }
    list.textContent = "";
    (result.problems || []).forEach(function (p) {
      var item = document.createElement("li");
      item.className = p.severity;
      var label = p.label ? p.label + ": " : "";
      item.textContent = label + (p.severity === "warning" ? "warning: " : "") + p.message + ". " + p.fix;
      list.appendChild(item);
    });
    rowInputs(tr).forEach(function (input) {
      var state = result.cells && result.cells[input.dataset.field];
      if (state) { setState(input, state); }
      if (result.status === "saved") { input.dataset.saved = input.value; }
    });
  }

  function changed(tr) {
    return rowInputs(tr).some(function (input) { return input.value !== input.dataset.saved; });
  }

  function save(tr) {
    if (tr.classList.contains("locked") || !changed(tr)) { return; }
    var values = {};
    rowInputs(tr).forEach(function (input) { values[input.dataset.field] = input.value; });
    tr.setAttribute("aria-busy", "true");
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
      body: JSON.stringify({period: tr.dataset.period, values: values})
    }).then(function (response) {
      return response.json().catch(function () { return null; });
    }).then(function (result) {
      tr.removeAttribute("aria-busy");
      if (result) { show(tr, result); }
    }).catch(function () {
      tr.removeAttribute("aria-busy");
      document.getElementById("msg-form").textContent =
        "Could not reach the server; your values stay in the grid. Press Save draft to retry.";
    });
  }

  // A row is saved when the focus leaves it (not on every keystroke or cell).
  form.addEventListener("focusout", function (event) {
    var tr = event.target.closest && event.target.closest("tr[data-period]");
    if (!tr) { return; }
    var next = event.relatedTarget;
    if (next && tr.contains(next)) { return; }
    save(tr);
  });

  // Typing in a saved cell makes it "not saved yet" until the row is saved again.
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (input.dataset && input.dataset.field && input.value !== input.dataset.saved) {
      setState(input, "empty");
    }
  });
}());
