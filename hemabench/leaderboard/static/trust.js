/* The trust toggle: hides the rows and cells of self-reported results (verified and paper ones
   stay) and remembers the choice for the browser session. */
(function () {
  var box = document.getElementById("hide-self-reported");
  if (!box) return;
  function apply() { document.body.classList.toggle("hide-self-reported", box.checked); }
  try { box.checked = sessionStorage.getItem("hemabench-hide-self-reported") === "1"; } catch (e) { /* file:// */ }
  box.addEventListener("change", function () {
    try { sessionStorage.setItem("hemabench-hide-self-reported", box.checked ? "1" : "0"); } catch (e) { /* ignore */ }
    apply();
  });
  apply();
})();
