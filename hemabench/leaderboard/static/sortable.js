/* Sortable tables without any library: a button in each header sorts by that column.
   Cells sort by their data-sort value (exact numbers) or their text; empty cells stay last;
   rows of different trust tiers (data-tier: runs, then published numbers) stay in their own blocks. */
(function () {
  var TIERS = [null, "run", "verified", "self-reported", "paper"];
  function key(cell) {
    if (!cell) return null;
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (raw === "" || raw === "–") return null;
    var number = Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function compare(a, b) {
    if (typeof a === "number" && typeof b === "number") return a - b;
    return String(a).localeCompare(String(b));
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.tHead ? table.tHead.rows[table.tHead.rows.length - 1].cells : [];
    Array.prototype.forEach.call(headers, function (th, column) {
      var button = document.createElement("button");
      button.className = "sort";
      button.type = "button";
      button.textContent = "\u2195";
      button.setAttribute("aria-label", "sort by this column");
      th.appendChild(button);
      button.addEventListener("click", function () {
        var descending = th.getAttribute("aria-sort") !== "descending";
        Array.prototype.forEach.call(headers, function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (r1, r2) {
          var t1 = TIERS.indexOf(r1.getAttribute("data-tier")), t2 = TIERS.indexOf(r2.getAttribute("data-tier"));
          if (t1 !== t2) return t1 - t2;  /* runs and published numbers are never sorted into one another */
          var a = key(r1.cells[column]), b = key(r2.cells[column]);
          if (a === null || b === null) return (a === null) - (b === null);
          return descending ? compare(b, a) : compare(a, b);
        });
        rows.forEach(function (row) { body.appendChild(row); });
      });
    });
  });
})();
