// The import form: while a file goes up and is written, show a progress bar and keep the form from being
// sent twice. The upload's bytes are sent with XMLHttpRequest so the bar can follow them; the answer (the
// preview, or the redirect after the write) then replaces the page, as a plain form post would.
"use strict";
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.matches("form[data-progress]")) return;
  const bar = document.getElementById(form.dataset.progress);
  const status = document.getElementById(form.dataset.progress + "-status");
  if (!bar) return;
  event.preventDefault();
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  bar.hidden = false;
  bar.removeAttribute("value");
  const request = new XMLHttpRequest();
  request.open("POST", form.action);
  request.upload.addEventListener("progress", (e) => {
    if (!e.lengthComputable) return;
    bar.max = e.total;
    bar.value = e.loaded;
    if (status) status.textContent = `Sending: ${Math.round((100 * e.loaded) / e.total)}%`;
  });
  request.upload.addEventListener("load", () => {
    bar.removeAttribute("value");
    if (status) status.textContent = "Checking and writing the records…";
  });
  request.addEventListener("load", () => {
    if (request.responseURL && request.responseURL !== form.action) {
      window.location.assign(request.responseURL);
      return;
    }
    document.open();
    document.write(request.responseText);
    document.close();
  });
  request.addEventListener("error", () => {
    if (status) status.textContent = "The connection failed; nothing was stored. Try again.";
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  });
  request.send(new FormData(form));
});
