/* Index filters without any library (works opened from disk): rows of #leaderboard carry
   data-family, data-params (millions, empty when unknown), data-trained (datasets the encoder
   was trained on) and data-tier. A filtered-out row gets the class "filtered" (display: none). */
(function () {
  var form = document.getElementById("filters");
  var table = document.getElementById("leaderboard");
  if (!form || !table) return;
  var family = document.getElementById("filter-family"), params = document.getElementById("filter-params");
  var trained = document.getElementById("filter-trained"), papers = document.getElementById("filter-papers");
  var count = document.getElementById("filter-count");
  function visible(row) {
    if (family.value && row.getAttribute("data-family") !== family.value) return false;
    if (params.value) {
      var p = row.getAttribute("data-params");
      if (p === "" || p === null || Number(p) > Number(params.value)) return false;
    }
    if (trained.value && (" " + (row.getAttribute("data-trained") || "") + " ").indexOf(" " + trained.value + " ") >= 0) return false;
    if (!papers.checked && row.getAttribute("data-tier") === "paper") return false;
    return true;
  }
  function apply() {
    var rows = table.tBodies[0].rows, shown = 0;
    Array.prototype.forEach.call(rows, function (row) {
      var keep = visible(row);
      row.classList.toggle("filtered", !keep);
      if (keep) shown += 1;
    });
    count.textContent = shown + " of " + rows.length + " rows shown";
  }
  [family, params, trained, papers].forEach(function (input) { input.addEventListener("change", apply); });
  apply();
})();
