/**
 * A self-contained upload page for the storage API: pick files, watch each
 * upload's progress, resume an interrupted upload (the parts already
 * recorded are listed and skipped), abort.
 *
 * @since 0.1.0
 */
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"

/**
 * The page's HTML. `apiBase` is where the storage routes are mounted ("" for
 * the same origin).
 *
 * @since 0.1.0
 * @category pages
 */
export const html = (options: { readonly apiBase?: string; readonly title?: string } = {}): string =>
  `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(options.title ?? "effect-storage uploads")}</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  h1 { font-size: 1.4rem; }
  fieldset { border: 1px solid #ccc; border-radius: 6px; margin-bottom: 1rem; }
  input[type=text] { width: 20rem; }
  .upload { border: 1px solid #ddd; border-radius: 6px; padding: .6rem .8rem; margin: .5rem 0; }
  .upload progress { width: 100%; height: 1rem; }
  .row { display: flex; justify-content: space-between; gap: 1rem; align-items: baseline; }
  .key { font-family: ui-monospace, monospace; font-size: .85rem; word-break: break-all; }
  .status[data-state=error] { color: #b00020; }
  .status[data-state=done] { color: #1b7f3b; }
  button { cursor: pointer; }
</style>
</head>
<body>
<h1>Upload files</h1>
<fieldset>
  <legend>Who you are</legend>
  <label>Bearer token <input type="text" id="token" autocomplete="off" placeholder="tokenA"></label>
</fieldset>
<fieldset>
  <legend>Files</legend>
  <input type="file" id="files" multiple>
  <label><input type="checkbox" id="public"> public (pub/ key)</label>
  <button id="upload" type="button">Upload</button>
  <p><small>An interrupted upload resumes where it stopped: pick the same file again.</small></p>
</fieldset>
<div id="uploads"></div>
<script>
"use strict";
const apiBase = ${JSON.stringify(options.apiBase ?? "")};
const tokenInput = document.getElementById("token");
tokenInput.value = localStorage.getItem("effect-storage.token") || "";
tokenInput.addEventListener("change", () => localStorage.setItem("effect-storage.token", tokenInput.value.trim()));
const auth = () => ({ authorization: "Bearer " + tokenInput.value.trim() });
const fingerprint = (file) => "effect-storage.ticket:" + [file.name, file.size, file.lastModified].join(":");

async function api(method, path, body) {
  const headers = auth();
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(apiBase + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = text === "" ? null : JSON.parse(text);
  if (!res.ok) throw Object.assign(new Error((json && json.message) || res.statusText), { status: res.status, tag: json && json._tag });
  return json;
}

function sendPart(claimId, partNumber, blob, onProgress, signal) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", apiBase + "/storage/uploads/" + encodeURIComponent(claimId) + "/parts/" + partNumber);
    xhr.setRequestHeader("authorization", auth().authorization);
    xhr.setRequestHeader("content-type", "application/octet-stream");
    xhr.upload.onprogress = (e) => onProgress(e.loaded);
    xhr.onload = () => {
      if (xhr.status === 200) resolve(JSON.parse(xhr.responseText));
      else {
        let message = xhr.statusText;
        try { message = JSON.parse(xhr.responseText).message; } catch (_) {}
        reject(Object.assign(new Error(message), { status: xhr.status }));
      }
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.onabort = () => reject(Object.assign(new Error("aborted"), { aborted: true }));
    signal.addEventListener("abort", () => xhr.abort());
    xhr.send(blob);
  });
}

function row(file) {
  const el = document.createElement("div");
  el.className = "upload";
  el.dataset.name = file.name;
  el.innerHTML = '<div class="row"><strong class="name"></strong><span class="status" data-state="running">starting</span></div>' +
    '<progress class="progress" max="100" value="0"></progress>' +
    '<div class="row"><span class="key"></span><span><a class="download" hidden>download</a> <button class="abort" type="button">abort</button></span></div>';
  el.querySelector(".name").textContent = file.name + " (" + file.size + " bytes)";
  document.getElementById("uploads").prepend(el);
  return el;
}

async function upload(file, isPublic) {
  const el = row(file);
  const status = el.querySelector(".status");
  const bar = el.querySelector(".progress");
  let finished = false;
  const say = (text, state) => {
    if (finished) return;
    status.textContent = text;
    status.dataset.state = state || "running";
    if (state === "done" || state === "error") finished = true;
  };
  const controller = new AbortController();
  let ticket = null;
  let userAborted = false;
  el.querySelector(".abort").onclick = async () => {
    userAborted = true;
    controller.abort();
    if (ticket) { try { await api("DELETE", "/storage/uploads/" + encodeURIComponent(ticket.claimId)); } catch (_) {} }
    localStorage.removeItem(fingerprint(file));
    finished = false;
    say("aborted", "error");
  };
  try {
    const saved = localStorage.getItem(fingerprint(file));
    let done = new Map();
    if (saved) {
      ticket = JSON.parse(saved);
      try {
        const listed = await api("GET", "/storage/uploads/" + encodeURIComponent(ticket.claimId) + "/parts");
        for (const p of listed.parts) done.set(p.partNumber, p.size);
        say("resuming: " + done.size + " of " + ticket.partCount + " parts already uploaded");
      } catch (e) {
        ticket = null; done = new Map();
      }
    }
    if (!ticket) {
      ticket = await api("POST", "/storage/uploads", { filename: file.name, size: file.size, contentType: file.type || undefined, public: isPublic });
      localStorage.setItem(fingerprint(file), JSON.stringify(ticket));
    }
    el.querySelector(".key").textContent = ticket.key;
    const loaded = new Map(done);
    const report = () => {
      let sum = 0;
      for (const v of loaded.values()) sum += v;
      bar.value = Math.floor((sum / file.size) * 100);
    };
    report();
    const todo = [];
    for (let n = 1; n <= ticket.partCount; n++) if (!done.has(n)) todo.push(n);
    const worker = async () => {
      while (todo.length > 0) {
        const n = todo.shift();
        const blob = file.slice((n - 1) * ticket.partSize, Math.min(n * ticket.partSize, file.size));
        await sendPart(ticket.claimId, n, blob, (bytes) => { loaded.set(n, bytes); report(); }, controller.signal);
        loaded.set(n, blob.size); report();
        say("uploading: part " + n + " of " + ticket.partCount + " sent");
      }
    };
    await Promise.all([worker(), worker(), worker()]);
    say("assembling");
    const result = await api("POST", "/storage/uploads/" + encodeURIComponent(ticket.claimId) + "/complete");
    localStorage.removeItem(fingerprint(file));
    bar.value = 100;
    const link = el.querySelector(".download");
    // A short-lived signed link (the token never goes into a URL), made
    // again when it has expired by the time it is clicked.
    let expiresAt = 0;
    const refreshLink = async () => {
      const signed = await api("POST", "/storage/links", { key: result.key });
      link.href = apiBase + signed.url;
      expiresAt = Date.parse(signed.expiresAt);
    };
    await refreshLink();
    link.addEventListener("click", async (event) => {
      if (Date.now() < expiresAt - 5000) return;
      event.preventDefault();
      try {
        await refreshLink();
        link.click();
      } catch (e) {
        say("download link refused: " + e.message, "error");
      }
    });
    link.hidden = false;
    el.querySelector(".abort").hidden = true;
    el.dataset.key = result.key;
    say("done: " + result.size + " bytes", "done");
  } catch (e) {
    if (userAborted) return;
    // Stop the other parts in flight; what was recorded stays for a resume.
    controller.abort();
    say("failed: " + e.message + " (pick the file again to resume)", "error");
  }
}

document.getElementById("upload").addEventListener("click", () => {
  const isPublic = document.getElementById("public").checked;
  for (const file of document.getElementById("files").files) upload(file, isPublic);
});
</script>
</body>
</html>
`

/**
 * The page as a response.
 *
 * @since 0.1.0
 * @category pages
 */
export const response = (options?: { readonly apiBase?: string; readonly title?: string }) =>
  HttpServerResponse.text(html(options), { contentType: "text/html; charset=utf-8" })

const escapeHtml = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)
