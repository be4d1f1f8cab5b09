// Progressive enhancement of templates/review/_feedback.html: send the thumb as JSON and update the
// counts in place. Without this script the form posts and the page reloads; both paths do the same.
function csrfToken(form) {
  const input = form.querySelector("input[name=csrfmiddlewaretoken]");
  return input ? input.value : "";
}
function enhance(box) {
  const form = box.querySelector("form");
  if (!form || form.dataset.enhanced) return;
  form.dataset.enhanced = "1";
  form.addEventListener("submit", function (event) {
    const button = event.submitter;
    if (!button) return;
    event.preventDefault();
    const status = box.querySelector(".review-feedback-status");
    const comment = form.querySelector("textarea[name=comment]");
    fetch(form.action, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken(form)},
      body: JSON.stringify({rating: button.value, comment: comment ? comment.value : ""})
    }).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (result) {
      if (!result.ok) { status.textContent = "Not saved: " + (result.body.error || "error"); return; }
      box.querySelector("[data-count=up]").textContent = result.body.counts.up;
      box.querySelector("[data-count=down]").textContent = result.body.counts.down;
      box.querySelectorAll(".review-thumb").forEach(function (b) {
        const mine = result.body.mine && b.value === result.body.mine.rating;
        b.classList.toggle("is-mine", !!mine);
        b.setAttribute("aria-pressed", mine ? "true" : "false");
      });
      status.textContent = "Thanks: your verdict is saved.";
    }).catch(function () { form.submit(); });
  });
}
function init() { document.querySelectorAll(".review-feedback").forEach(enhance); }
if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init); else init();
