// The runs list (templates/runs/run_list.html): two ticked runs fill the compare form's a and b.
const form = document.getElementById("compare-form");
if (form) {
  const button = document.getElementById("compare-button");
  form.addEventListener("change", () => {
    const picked = [...form.querySelectorAll(".compare-pick:checked")].map((b) => b.value);
    button.disabled = picked.length !== 2;
    document.getElementById("compare-a").value = picked[0] || "";
    document.getElementById("compare-b").value = picked[1] || "";
  });
}
