/* vom: live regions, bulk selection, confirmations. No framework, no build step.
 *
 * Live regions: an element with data-refresh="<url>" is re-fetched every 2 s (or every
 * data-refresh-interval ms) while the page is visible, and its content replaced when it changed.
 * The server marks fragment answers with the header "X-Vom-Fragment: 1"; anything else (the
 * login page after the session expired, an error page) stops polling that region. A region with
 * data-refresh-until-idle stops once its content holds no element marked data-active.
 */
(function () {
  "use strict";

  var DEFAULT_INTERVAL = 2000;
  var regions = [];

  function isIdle(el) {
    return el.hasAttribute("data-refresh-until-idle") && !el.querySelector("[data-active]");
  }

  function schedule(region, delay) {
    clearTimeout(region.timer);
    if (region.stopped) return;
    region.timer = setTimeout(function () { poll(region); }, delay === undefined ? region.interval : delay);
  }

  function stop(region) {
    region.stopped = true;
    clearTimeout(region.timer);
    region.el.removeAttribute("aria-busy");
  }

  function poll(region) {
    if (region.stopped) return;
    if (document.hidden) { region.pending = true; return; }  // resumed on visibilitychange
    region.pending = false;
    region.el.setAttribute("aria-busy", "true");
    fetch(region.url, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { "X-Requested-With": "fetch", "Accept": "text/html" }
    }).then(function (response) {
      if (!response.ok || response.headers.get("X-Vom-Fragment") !== "1") {
        stop(region);
        if (response.redirected) window.location.reload();  // signed out: let the server redirect to login
        return null;
      }
      return response.text();
    }).then(function (html) {
      region.el.removeAttribute("aria-busy");
      if (html === null || region.stopped) return;
      if (html !== region.last) {
        region.last = html;
        region.el.innerHTML = html;
        enhance(region.el);
      }
      if (isIdle(region.el)) stop(region); else schedule(region);
    }).catch(function () {
      // Network hiccup or server restart: try again, slower.
      region.el.removeAttribute("aria-busy");
      schedule(region, region.interval * 3);
    });
  }

  function startRegions() {
    document.querySelectorAll("[data-refresh]").forEach(function (el) {
      var region = {
        el: el,
        url: el.getAttribute("data-refresh"),
        interval: parseInt(el.getAttribute("data-refresh-interval"), 10) || DEFAULT_INTERVAL,
        last: null,
        timer: null,
        stopped: false,
        pending: false
      };
      regions.push(region);
      if (isIdle(el)) { region.stopped = true; return; }
      schedule(region);
    });
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      regions.forEach(function (region) { if (region.pending && !region.stopped) poll(region); });
    });
  }

  /* Bulk selection in the VM list: select-all, counter, submit enabled only with a selection. */
  function setupBulk(form) {
    var all = form.querySelector("[data-select-all]");
    var counter = form.querySelector("[data-selected-count]");
    var submit = form.querySelector("[data-bulk-submit]");
    function boxes() { return form.querySelectorAll('input[type="checkbox"][name="vm"]:not(:disabled)'); }
    function update() {
      var list = boxes(), n = 0;
      list.forEach(function (b) { if (b.checked) n += 1; b.closest("tr").classList.toggle("selected", b.checked); });
      if (counter) counter.textContent = String(n);
      if (submit) submit.disabled = n === 0;
      if (all) {
        all.checked = n > 0 && n === list.length;
        all.indeterminate = n > 0 && n < list.length;
      }
    }
    if (all) all.addEventListener("change", function () {
      boxes().forEach(function (b) { b.checked = all.checked; });
      update();
    });
    form.addEventListener("change", function (e) { if (e.target.name === "vm") update(); });
    update();
  }

  /* Buttons with data-confirm ask first. Delegated, so it also works inside refreshed regions. */
  function setupConfirm() {
    document.addEventListener("submit", function (e) {
      var button = e.submitter;
      var message = (button && button.getAttribute("data-confirm")) || e.target.getAttribute("data-confirm");
      if (message && !window.confirm(message)) { e.preventDefault(); return; }
      if (button) setTimeout(function () { button.disabled = true; }, 0);  // no double submission
    }, true);
  }

  /* The page-size chooser reloads the list with ?per_page=N from the first page. */
  function setupPageSize() {
    document.querySelectorAll("[data-page-size]").forEach(function (select) {
      select.addEventListener("change", function () {
        var url = new URL(window.location.href);
        url.searchParams.set("per_page", select.value);
        url.searchParams.delete("page");
        window.location.assign(url.toString());
      });
    });
  }

  /* Provider form: show only the chosen platform's fieldset, and name the URI and user fields in
   * that platform's words (the server ignores other platforms' fields whatever is posted). */
  function setupProviderForm(form) {
    var select = form.querySelector('select[name="kind"]');
    function apply(kind) {
      form.setAttribute("data-kind", kind);
      form.querySelectorAll("[data-kind-fields]").forEach(function (set) {
        set.hidden = set.getAttribute("data-kind-fields") !== kind;
      });
      form.querySelectorAll("[data-wording]").forEach(function (input) {
        var wording;
        try { wording = JSON.parse(input.getAttribute("data-wording"))[kind]; } catch (e) { return; }
        if (!wording) return;
        var label = form.querySelector('[data-label-for="' + input.name + '"]');
        if (label) {
          var req = label.querySelector(".req");
          label.textContent = wording.label;
          if (req) { label.appendChild(document.createTextNode(" ")); label.appendChild(req); }
        }
        var help = form.querySelector('[data-help-for="' + input.name + '"]');
        if (help) { help.textContent = wording.help; help.hidden = !wording.help; }
        if (wording.placeholder) input.setAttribute("placeholder", wording.placeholder);
        else input.removeAttribute("placeholder");
      });
    }
    if (select) {
      select.addEventListener("change", function () { apply(select.value); });
      apply(select.value);
    }
  }

  function enhance(root) {
    root.querySelectorAll("form[data-bulk]").forEach(setupBulk);
  }

  document.addEventListener("DOMContentLoaded", function () {
    enhance(document);
    document.querySelectorAll("form[data-provider-form]").forEach(setupProviderForm);
    setupConfirm();
    setupPageSize();
    startRegions();
  });
})();
