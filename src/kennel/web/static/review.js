// The reviewer's screen: keys, the card swap, drafts. Served from /static (the CSP allows no inline script).
//
// Every action names its item by the interaction id of the card on screen when the action runs. Actions
// that bring another card (submit, skip, undo, next/previous, go to) make the screen busy until the new card
// is in; keys pressed meanwhile wait in `pending` and run, in order, on the new card: a key pressed after
// Ctrl+Enter was meant for the next item, and acts on it. If the request fails, the waiting keys are
// dropped (they were meant for a card that did not come) and the reason is shown.
(function () {
  "use strict";
  const root = document.getElementById("review");
  if (!root) return;
  const queue = root.dataset.queue;
  const token = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const slot = document.getElementById("review-slot");
  const alertBox = document.getElementById("review-alert");
  const help = document.getElementById("review-help");
  const goto = document.getElementById("review-goto");
  const base = "/queues/" + encodeURIComponent(queue);
  const COMMANDS = new Set(["j", "k", "ArrowRight", "ArrowLeft", "ArrowUp", "ArrowDown", "p", "f", "r", "s", "u",
    "x", "g", "?", "submit"]);
  let busy = false;
  const pending = [];
  let focused = 0;
  let draftTimer = null;
  let draftSent = Promise.resolve();
  let swaps = 0;

  const card = () => slot.querySelector("#review-card");
  const form = () => slot.querySelector("#review-form");
  const labels = () => Array.from(slot.querySelectorAll("fieldset.label"));
  const itemId = () => (card() ? card().dataset.interaction : "");

  function body(fields) {
    const params = new URLSearchParams(fields || {});
    params.set("csrf_token", token);
    return params;
  }

  function send(url, params) {
    return fetch(url, {
      method: "POST", credentials: "same-origin", body: params,
      headers: {"X-CSRF-Token": token, "Content-Type": "application/x-www-form-urlencoded"},
    });
  }

  function say(text, missing) {
    alertBox.textContent = text;
    for (const fs of labels()) {
      const bad = (missing || []).includes(fs.dataset.name);
      fs.classList.toggle("invalid", bad);
      if (bad) fs.setAttribute("aria-invalid", "true"); else fs.removeAttribute("aria-invalid");
    }
  }

  function show(html) {
    slot.innerHTML = html;
    focused = 0;
    mark();
    const id = itemId();
    const url = id ? base + "?item=" + encodeURIComponent(id) : base;
    history.replaceState(null, "", url);
    swaps += 1;
    root.dataset.swaps = String(swaps);
    const c = card();
    if (c) c.focus({preventScroll: true});
    window.scrollTo(0, 0);
  }

  // An action whose answer is the next card.
  async function replace(url, params) {
    busy = true;
    root.setAttribute("aria-busy", "true");
    clearTimeout(draftTimer);
    draftTimer = null;
    try {
      await draftSent;
      const res = await send(url, params);
      const text = await res.text();
      if (res.ok) {
        say("");
        show(text);
      } else {
        const doc = new DOMParser().parseFromString(text, "text/html");
        const p = doc.querySelector(".error");
        pending.length = 0;
        say(p ? p.textContent : "The server answered " + res.status + "; nothing was saved.",
          p && p.dataset.missing ? p.dataset.missing.split(",") : []);
      }
    } catch (err) {
      pending.length = 0;
      say("The server could not be reached; nothing was saved. Try again.");
    } finally {
      busy = false;
      root.removeAttribute("aria-busy");
      setTimeout(drain, 0);
    }
  }

  function drain() {
    while (!busy && pending.length) run(pending.shift());
  }

  function enqueue(command) {
    // Behind any key still waiting, so that keys act in the order they were pressed.
    pending.push(command);
    if (!busy) drain();
  }

  function saveDraft() {
    const f = form();
    const id = itemId();
    if (!f || !id) return;
    const params = new URLSearchParams(new FormData(f));
    draftSent = send(base + "/items/" + encodeURIComponent(id) + "/draft", params).then(async (res) => {
      if (!res.ok) {
        const doc = new DOMParser().parseFromString(await res.text(), "text/html");
        const p = doc.querySelector(".error");
        say("Your draft was not saved: " + (p ? p.textContent : res.status));
      }
    }).catch(() => say("Your draft was not saved: the server could not be reached."));
  }

  function scheduleDraft() {
    clearTimeout(draftTimer);
    draftTimer = setTimeout(() => { draftTimer = null; saveDraft(); }, 400);
  }

  function mark() {
    labels().forEach((fs, i) => fs.classList.toggle("current", i === focused));
  }

  function current() {
    return labels()[focused];
  }

  function choose(digit) {
    const fs = current();
    if (!fs) return;
    const type = fs.dataset.type;
    if (type === "categorical" || type === "boolean") {
      const options = fs.querySelectorAll(':scope > .options input[type="radio"]');
      const option = options[digit - 1];
      if (option) option.checked = true;
    } else if (type === "score") {
      const input = fs.querySelector('input[type="number"]');
      const min = fs.dataset.min === undefined ? -Infinity : Number(fs.dataset.min);
      const max = fs.dataset.max === undefined ? Infinity : Number(fs.dataset.max);
      if (input && digit >= min && digit <= max) input.value = String(digit);
    }
    scheduleDraft();
  }

  function withPart(selector) {
    // The current label's part if it has one, else the first label that has it.
    const fs = current();
    return (fs && fs.querySelector(selector)) || slot.querySelector("fieldset.label " + selector);
  }

  function run(command) {
    const key = command.key;
    const id = itemId();
    const item = id ? base + "/items/" + encodeURIComponent(id) : "";
    if (/^[1-9]$/.test(key)) { choose(Number(key)); return; }
    switch (key) {
      case "submit":
        if (form() && id) replace(item + "/submit", new URLSearchParams(new FormData(form())));
        break;
      case "j": case "ArrowRight":
        if (id) replace(base + "/open", body({interaction_id: id, step: "1"}));
        break;
      case "k": case "ArrowLeft":
        if (id) replace(base + "/open", body({interaction_id: id, step: "-1"}));
        break;
      case "ArrowDown": case "ArrowUp": {
        const n = labels().length;
        if (n) { focused = (focused + (key === "ArrowDown" ? 1 : n - 1)) % n; mark(); current().scrollIntoView({block: "nearest"}); }
        break;
      }
      case "p": case "f": {
        const radio = withPart('.assess input[value="' + (key === "p" ? "pass" : "fail") + '"]');
        if (radio) { radio.checked = true; scheduleDraft(); }
        break;
      }
      case "r": {
        const area = withPart("label.reasoning textarea");
        if (area) area.focus();
        break;
      }
      case "s":
        if (id) replace(item + "/skip", body());
        break;
      case "u":
        replace(base + "/undo", body());
        break;
      case "x":
        if (id) replace(item + "/flag", body({flagged: card().dataset.flagged === "true" ? "false" : "true"}));
        break;
      case "g":
        goto.hidden = false;
        goto.querySelector("input").focus();
        break;
      case "?":
        if (help.open) help.close(); else help.showModal();
        break;
    }
  }

  function typing(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable) return true;
    if (el.tagName === "TEXTAREA" || el.tagName === "SELECT") return true;
    return el.tagName === "INPUT" && !["radio", "checkbox", "button", "submit", "reset"].includes(el.type);
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.isComposing || ev.defaultPrevented) return;
    const submit = ev.key === "Enter" && (ev.ctrlKey || ev.metaKey);
    const inGoto = goto.contains(ev.target);
    if (typing(ev.target) || inGoto) {
      if (submit && !inGoto) { ev.preventDefault(); enqueue({key: "submit"}); }
      else if (ev.key === "Escape") {
        ev.preventDefault();
        if (inGoto) goto.hidden = true;
        ev.target.blur();
      }
      return;
    }
    if (help.open) return;  // the dialog has its own keys (Esc closes it)
    if (ev.altKey || ((ev.ctrlKey || ev.metaKey) && !submit)) return;
    const key = submit ? "submit" : ev.key;
    if (!COMMANDS.has(key) && !/^[1-9]$/.test(key)) return;
    // Arrow keys on a radio button move within its group, as they always do.
    if (key.startsWith("Arrow") && ev.target.type === "radio") return;
    ev.preventDefault();
    enqueue({key: key});
  });

  slot.addEventListener("submit", (ev) => { ev.preventDefault(); enqueue({key: "submit"}); });
  slot.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-key]");
    if (button) { ev.preventDefault(); enqueue({key: button.dataset.key}); }
  });
  slot.addEventListener("input", scheduleDraft);
  slot.addEventListener("change", scheduleDraft);
  slot.addEventListener("focusin", (ev) => {
    const fs = ev.target.closest("fieldset.label");
    if (fs) { focused = labels().indexOf(fs); mark(); }
  });
  goto.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const n = goto.querySelector("input").value;
    goto.hidden = true;
    goto.reset();
    replace(base + "/open", body({position: n}));
  });
  goto.querySelector("[data-close]").addEventListener("click", () => { goto.hidden = true; });

  const start = root.dataset.item;
  replace(start ? base + "/open" : base + "/next", body(start ? {interaction_id: start} : {}));
})();
