// metalfleet dashboard: live regions and confirmation dialogs. Plain JS, no build step.
//
// Live updates: every 2 s the page fetches its own URL and swaps the inner HTML of each
// element marked data-live (matched by id). Selected checkboxes survive the swap.
// Confirmation: a form with data-confirm opens a dialog; only "Confirm" submits it, with
// confirmed=1 (without JavaScript the server shows a confirmation page instead).
"use strict";

const POLL_MS = 2000;

function setLive(ok) {
  const badge = document.getElementById("live-status");
  if (!badge) return;
  badge.classList.toggle("ok", ok);
  badge.classList.toggle("stale", !ok);
  badge.title = ok ? "live: updated " + new Date().toLocaleTimeString() : "live: update failed";
}

async function refresh() {
  const regions = document.querySelectorAll("[data-live][id]");
  if (!regions.length || document.hidden) return;
  try {
    const response = await fetch(window.location.href, {
      credentials: "same-origin", headers: { "X-Live": "1" }, cache: "no-store",
    });
    if (response.redirected && new URL(response.url).pathname === "/ui/login") {
      window.location.assign(response.url);  // the session ended
      return;
    }
    if (!response.ok) { setLive(false); return; }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const checked = new Set(
      [...document.querySelectorAll("input[type=checkbox][name=node]:checked")].map((e) => e.value));
    for (const region of regions) {
      const next = fresh.getElementById(region.id);
      if (next && next.innerHTML !== region.innerHTML) region.innerHTML = next.innerHTML;
    }
    for (const box of document.querySelectorAll("input[type=checkbox][name=node]")) {
      box.checked = checked.has(box.value);
    }
    wireForms(document);
    setLive(true);
  } catch (err) {
    setLive(false);
  }
}

function describe(form) {
  const data = new FormData(form);
  if (form.dataset.confirm === "bulk") {
    const nodes = [...document.querySelectorAll("input[type=checkbox][name=node]:checked")]
      .map((e) => e.value);
    const select = form.querySelector("select[name=action]");
    const label = select.options[select.selectedIndex].text;
    let text = `${label} on ${nodes.length} node(s): ${nodes.join(", ")}`;
    if (data.get("action") === "deploy" && data.get("image")) text += ` with image ${data.get("image")}`;
    return { text, ok: nodes.length > 0 };
  }
  let text = form.dataset.confirm;
  if (data.get("image")) text += ` with image ${data.get("image")}`;
  if (data.get("reason")) text += ` (reason: ${data.get("reason")})`;
  return { text: text + "?", ok: true };
}

function confirmSubmit(event) {
  const form = event.currentTarget;
  if (form.querySelector("input[name=confirmed]")) return;  // already confirmed
  event.preventDefault();
  const { text, ok } = describe(form);
  const dialog = document.getElementById("confirm-dialog");
  if (!ok) { window.alert("Select one or more nodes first."); return; }
  document.getElementById("confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.onclose = () => {
    if (dialog.returnValue !== "ok") return;
    const flag = document.createElement("input");
    flag.type = "hidden"; flag.name = "confirmed"; flag.value = "1";
    form.appendChild(flag);
    form.submit();
  };
  dialog.showModal();
}

function wireForms(root) {
  for (const form of root.querySelectorAll("form[data-confirm]")) {
    if (form.dataset.wired) continue;
    form.dataset.wired = "1";
    form.addEventListener("submit", confirmSubmit);
  }
  const all = root.querySelector("#select-all");
  if (all && !all.dataset.wired) {
    all.dataset.wired = "1";
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("input[type=checkbox][name=node]")) box.checked = all.checked;
    });
  }
  for (const select of root.querySelectorAll("form#filters select")) {
    if (select.dataset.wired) continue;
    select.dataset.wired = "1";
    select.addEventListener("change", () => select.form.submit());
  }
}

document.addEventListener("DOMContentLoaded", () => {
  wireForms(document);
  if (document.querySelector("[data-live][id]")) {
    setLive(true);
    window.setInterval(refresh, POLL_MS);
  }
});
