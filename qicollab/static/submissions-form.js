/* As-you-type validation of the aggregate values form.
 *
 * Sends the form's values to the JSON validation endpoint (the same checks as an upload; nothing
 * is stored) and shows each problem next to its field. No inline script: the CSP is
 * script-src 'self'. */
(function () {
  "use strict";
  var form = document.getElementById("values-form");
  if (!form || !window.fetch) { return; }
  var url = form.getAttribute("data-validate-url");
  var timer = null;

  function values() {
    var data = {};
    Array.prototype.forEach.call(form.elements, function (el) {
      if (!el.name || el.name === "csrf_token" || el.name === "action" ||
          el.name === "reason" || el.name === "justification") { return; }
      data[el.name] = el.value;
    });
    return data;
  }

  function clear() {
    Array.prototype.forEach.call(form.querySelectorAll(".cell-message"), function (el) {
      el.textContent = "";
    });
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (el) {
      el.removeAttribute("aria-invalid");
    });
  }

  function show(result) {
    clear();
    (result.problems || []).forEach(function (p) {
      var target = document.getElementById("msg-" + (p.column || "form")) ||
                   document.getElementById("msg-form");
      var text = (p.severity === "warning" ? "Warning: " : "") + p.message + ". " + p.fix;
      target.textContent = target.textContent ? target.textContent + " " + text : text;
      var input = document.getElementById(p.column || "");
      if (input && p.severity === "error") { input.setAttribute("aria-invalid", "true"); }
    });
    if (result.action === "replace") {
      document.getElementById("msg-form").textContent =
        "These values differ from the submitted version: submitting creates a new version (give a reason).";
    }
  }

  function check() {
    var token = form.elements.csrf_token ? form.elements.csrf_token.value : "";
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": token},
      body: JSON.stringify(values())
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (result) {
      if (result) { show(result); }
    }).catch(function () { /* offline: the server checks again on submit */ });
  }

  form.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 300);
  });
  form.addEventListener("change", check);
}());
