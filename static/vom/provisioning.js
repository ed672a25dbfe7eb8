/* vom provisioning: the live preview of the names a provisioning request will give.
 *
 * An element with data-name-preview="<url>?fragment=preview" inside a form shows the first and last
 * names; as the pattern, the count or the first number change, the server is asked again (it expands
 * the pattern exactly as the request will) and the element's content replaced with its answer.
 */
(function () {
  "use strict";

  var FIELDS = ["name_pattern", "count", "first_number"];

  function setupNamePreview(el) {
    var form = el.closest("form");
    var timer = null, seq = 0;
    if (!form) return;
    function refresh() {
      var params = new URLSearchParams();
      FIELDS.forEach(function (name) {
        var input = form.elements.namedItem(name);
        if (input) params.set(name, input.value);
      });
      var mine = ++seq;
      fetch(el.getAttribute("data-name-preview") + "&" + params.toString(), {
        credentials: "same-origin", cache: "no-store", headers: { "X-Requested-With": "fetch", "Accept": "text/html" }
      }).then(function (response) {
        if (!response.ok || response.headers.get("X-Vom-Fragment") !== "1") return null;
        return response.text();
      }).then(function (html) {
        if (html !== null && mine === seq) el.innerHTML = html;  // only the answer to the latest change
      }).catch(function () { /* a convenience only: the server checks everything again on submit */ });
    }
    form.addEventListener("input", function (e) {
      if (FIELDS.indexOf(e.target.name) === -1) return;
      clearTimeout(timer);
      timer = setTimeout(refresh, 250);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-name-preview]").forEach(setupNamePreview);
  });
})();
