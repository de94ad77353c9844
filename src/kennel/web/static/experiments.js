// The compare view's keys: j/k move between records, x ticks the record for an action, o (or Enter) opens
// it with every run's trace, [ and ] page, and ? lists the keys. Never while typing in a field.
(function () {
  "use strict";
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-record]")); }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var at = all.indexOf(document.activeElement);
    var next = all[Math.max(0, Math.min(all.length - 1, at < 0 ? 0 : at + step))];
    next.focus();
    next.scrollIntoView({block: "nearest"});
  }
  function current() { var r = document.activeElement; return r && r.matches && r.matches("tr[data-record]") ? r : null; }
  function follow(selector) { var a = document.querySelector(selector); if (a) { a.click(); } }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var row = current();
    switch (event.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "x": if (row) { var box = row.querySelector("input[type=checkbox]"); if (box) { box.click(); } } break;
      case "o": case "Enter": if (row) { var link = row.querySelector("a"); if (link) { link.click(); } } else { return; } break;
      case "]": follow("a[rel=next]"); break;
      case "[": follow("a[data-first]"); break;
      case "?": var keys = document.getElementById("keys"); if (keys) { keys.open = !keys.open; } break;
      default: return;
    }
    event.preventDefault();
  });
})();
