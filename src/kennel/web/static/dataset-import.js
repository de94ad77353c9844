// The import pages: while a file goes up, show a progress bar following its bytes; while it is written,
// one following the records written, read from the import's status (kept in the database, so whichever
// server answers the poll knows it). The forms are sent with XMLHttpRequest so the bars can move; the
// answer (the next step, or the versions page after the write) then replaces the page, as a plain post would.
"use strict";

function showProgress(bar, status, state) {
  if (state.records_total > 0) {
    bar.max = state.records_total;
    bar.value = state.records_processed;
    if (status) status.textContent = `Writing: ${state.records_processed.toLocaleString()} of ${state.records_total.toLocaleString()} records`;
  }
}

// Poll the import's status while `onState` returns true; returns a function that stops the polling.
function poll(url, onState) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok && !stopped && onState(await response.json()) === false) stopped = true;
    } catch (_) {
      // A missed poll is retried at the next tick.
    }
    if (!stopped) setTimeout(tick, 500);
  };
  setTimeout(tick, 300);
  return () => { stopped = true; };
}

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.matches("form[data-progress]")) return;
  const bar = document.getElementById(form.dataset.progress);
  const status = document.getElementById(form.dataset.progress + "-status");
  if (!bar) return;
  event.preventDefault();
  for (const button of form.querySelectorAll("button")) button.disabled = true;
  // The previous attempt's refusal no longer applies while this one runs; its answer says anew.
  for (const refusal of document.querySelectorAll("p.error[role=alert]")) refusal.hidden = true;
  bar.hidden = false;
  bar.removeAttribute("value");
  let stopPolling = () => {};
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
    if (status) status.textContent = form.dataset.status ? "Checking and writing the records…" : "Checking the file…";
    if (form.dataset.status) {
      stopPolling = poll(form.dataset.status, (state) => {
        if (state.status === "writing") showProgress(bar, status, state);
        return state.status === "writing" || state.status === "staged";
      });
    }
  });
  request.addEventListener("load", () => {
    stopPolling();
    if (request.responseURL && request.responseURL !== form.action) {
      window.location.assign(request.responseURL);
      return;
    }
    document.open();
    document.write(request.responseText);
    document.close();
  });
  request.addEventListener("error", () => {
    stopPolling();
    if (status) status.textContent = "The connection failed. Reload the page to see where the import stands.";
    for (const button of form.querySelectorAll("button")) button.disabled = false;
  });
  request.send(new FormData(form));
});

// A page opened while the import is being written follows it, then shows where it ended.
document.addEventListener("DOMContentLoaded", () => {
  const bar = document.querySelector("progress[data-poll]");
  if (!bar) return;
  const status = document.getElementById(bar.id + "-status");
  poll(bar.dataset.poll, (state) => {
    if (state.status === "writing") {
      showProgress(bar, status, state);
      return true;
    }
    window.location.reload();
    return false;
  });
});
