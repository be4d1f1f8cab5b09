// Two ticked runs fill the compare form's a and b.
(function () {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = document.getElementById("compare-button");
  form.addEventListener("change", function () {
    const picked = Array.from(form.querySelectorAll(".compare-pick:checked")).map(function (b) { return b.value; });
    button.disabled = picked.length !== 2;
    document.getElementById("compare-a").value = picked[0] || "";
    document.getElementById("compare-b").value = picked[1] || "";
  });
})();
