// The team switcher in the top bar: choosing a team posts the form to that team's switch URL.
const select = document.getElementById("team-select");
select?.addEventListener("change", () => {
  select.form.action = "/teams/" + encodeURIComponent(select.value) + "/switch/";
  select.form.submit();
});
