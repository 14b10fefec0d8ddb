// The endpoint table: sort by a column, filter by text and severity, page through the rows.
// Rows come from the embedded report JSON and are set with textContent, never as HTML.
(function () {
  "use strict";
  // Printing shows every chart's data table, closed or not.
  window.addEventListener("beforeprint", function () {
    Array.prototype.forEach.call(document.querySelectorAll("details.data"), function (d) { d.open = true; });
  });
  var table = document.getElementById("endpoint-table");
  if (!table) { return; }
  var report = JSON.parse(document.getElementById("etcdsec-report").textContent);
  var data = report.endpoints.rows;
  var pageRows = parseInt(table.getAttribute("data-page-rows"), 10) || 50;
  var filter = document.getElementById("ep-filter");
  var severity = document.getElementById("ep-severity");
  var status = document.getElementById("ep-status");
  var prev = document.getElementById("ep-prev");
  var next = document.getElementById("ep-next");
  var body = table.tBodies[0];
  var sortCol = -1, sortDir = 1, page = 0, shown = data;
  var sevCol = report.endpoints.columns.indexOf("severity");

  function cellText(v) {
    if (v === true) { return "yes"; }
    if (v === false) { return "no"; }
    if (v === null || v === undefined) { return "-"; }
    return String(v);
  }
  function compare(a, b) {
    var x = a[sortCol], y = b[sortCol];
    if (x === y) { return 0; }
    if (x === null || x === undefined) { return 1; }
    if (y === null || y === undefined) { return -1; }
    if (typeof x === "number" && typeof y === "number") { return (x - y) * sortDir; }
    return String(x).localeCompare(String(y), undefined, {numeric: true}) * sortDir;
  }
  function apply() {
    var needle = filter.value.trim().toLowerCase();
    var sev = severity.value;
    shown = data.filter(function (row) {
      if (sev && row[sevCol] !== sev) { return false; }
      if (!needle) { return true; }
      return row.some(function (v) { return cellText(v).toLowerCase().indexOf(needle) !== -1; });
    });
    if (sortCol >= 0) { shown = shown.slice().sort(compare); }
    draw();
  }
  function draw() {
    var pages = Math.max(1, Math.ceil(shown.length / pageRows));
    page = Math.min(Math.max(page, 0), pages - 1);
    var start = page * pageRows, rows = shown.slice(start, start + pageRows);
    var fragment = document.createDocumentFragment();
    rows.forEach(function (row) {
      var tr = document.createElement("tr");
      row.forEach(function (v) {
        var td = document.createElement("td");
        td.textContent = cellText(v);
        tr.appendChild(td);
      });
      fragment.appendChild(tr);
    });
    body.replaceChildren(fragment);
    status.textContent = shown.length ? "rows " + (start + 1) + "–" + (start + rows.length) + " of " + shown.length
      : "no row matches";
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
    th.querySelector("button").addEventListener("click", function () {
      var col = parseInt(th.getAttribute("data-col"), 10);
      sortDir = col === sortCol ? -sortDir : 1;
      sortCol = col;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", sortDir === 1 ? "ascending" : "descending");
      page = 0;
      apply();
    });
  });
  filter.addEventListener("input", function () { page = 0; apply(); });
  severity.addEventListener("change", function () { page = 0; apply(); });
  prev.addEventListener("click", function () { page -= 1; draw(); });
  next.addEventListener("click", function () { page += 1; draw(); });
  document.querySelector("#endpoints .controls").hidden = false;
  apply();
}());
