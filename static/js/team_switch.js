// The team switcher in the top bar: choosing a team posts the form to that team's switch URL.
(function () {
  const select = document.getElementById("team-select");
  if (!select) return;
  select.addEventListener("change", function () {
    select.form.action = "/teams/" + encodeURIComponent(select.value) + "/switch/";
    select.form.submit();
  });
})();
