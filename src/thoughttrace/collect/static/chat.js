// The chat page: send a message with its reason, stream the answer, ask for a reaction.
// Participant text is only ever put into the page with textContent; assistant HTML comes sanitised
// from the server. Each message gets an idempotency key kept in sessionStorage until the server
// confirms it, so a retried or replayed post is stored once.
(function () {
  "use strict";
  const root = document.getElementById("chat");
  if (!root) return;
  const cid = root.dataset.cid;
  const csrf = root.dataset.csrf;
  const requireReason = root.dataset.requireReason === "1";
  const requireReaction = root.dataset.requireReaction === "1";
  const labelsMode = root.dataset.labels;
  const deadline = Date.parse(root.dataset.deadline);
  const list = document.getElementById("messages");
  const statusEl = document.getElementById("status");
  const composer = document.getElementById("composer");
  const messageEl = document.getElementById("message");
  const reasonEl = document.getElementById("reason");
  const reasonLabelEl = document.getElementById("reason-label");
  const sendBtn = document.getElementById("send");
  const retryBtn = document.getElementById("retry");
  const reactionBox = document.getElementById("reaction-box");
  const reactionEl = document.getElementById("reaction");
  const reactionLabelEl = document.getElementById("reaction-label");
  const reactionBtn = document.getElementById("reaction-submit");
  const finishForm = document.getElementById("finish-form");
  const timerEl = document.getElementById("timer");
  let state = JSON.parse(document.getElementById("initial-state").textContent);
  let busy = false;
  let finishWhenIdle = false;
  // the study's own time limit (if any): warn two minutes before it, and when it passes send what is typed,
  // which the server keeps as a draft, instead of letting it vanish with the page
  const studyDeadline = state.study_deadline ? Date.parse(state.study_deadline) : null;
  let studyWarned = false, studyEnded = false;

  // Keystroke timing of a note (time from its first key to sending, and the number of keys): the
  // server turns implausibly fast or pasted notes into a quality flag for the researcher.
  function typingTracker(el) {
    let first = null, keys = 0;
    if (el) el.addEventListener("keydown", function () { if (first === null) first = Date.now(); keys += 1; });
    return {
      read: function () { return first === null ? { ms: 0, keys: 0 } : { ms: Date.now() - first, keys: keys }; },
      reset: function () { first = null; keys = 0; },
    };
  }
  const reasonTyping = typingTracker(reasonEl);
  const reactionTyping = typingTracker(reactionEl);

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    return Date.now().toString(36) + Math.random().toString(36).slice(2, 12);
  }
  function keyFor(slot) {
    const name = "tt-key-" + cid + "-" + slot;
    let k = sessionStorage.getItem(name);
    if (!k) { k = newKey(); sessionStorage.setItem(name, k); }
    return k;
  }
  function dropKey(slot) { sessionStorage.removeItem("tt-key-" + cid + "-" + slot); }
  function setStatus(text, isError) {
    statusEl.textContent = text || "";
    statusEl.className = "status" + (isError ? " error" : "");
  }
  async function postJSON(url, body) {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? "{}" : JSON.stringify(body),
    });
    return resp;
  }
  async function errorOf(resp) {
    try { const j = await resp.json(); if (j.draft_saved && j.redirect) { location.href = j.redirect; return j.error; } if (j.redirect && resp.status === 409 && /time is up|finished/.test(j.error)) { location.href = j.redirect; } return j.error || resp.statusText; }
    catch (e) { return resp.statusText; }
  }

  function noteEl(kind, note) {
    const div = document.createElement("div");
    div.className = "note";
    const head = document.createElement("span");
    head.className = "note-kind";
    head.textContent = (kind === "user" ? "Your reason" : "Your reaction") + " (private): ";
    const body = document.createElement("span");
    body.textContent = note.content + (note.label ? " [" + note.label + "]" : "");
    div.append(head, body);
    return div;
  }
  function addMessage(m) {
    const li = document.createElement("li");
    li.className = "msg " + m.role;
    li.dataset.id = m.id || "";
    const who = document.createElement("div");
    who.className = "meta";
    who.textContent = m.role === "user" ? "You" : "Assistant";
    const body = document.createElement("div");
    if (m.role === "assistant" && m.html !== undefined) { body.className = "md"; body.innerHTML = m.html; }
    else { body.className = "plain"; body.textContent = m.content; }
    li.append(who, body);
    if (m.note) li.append(noteEl(m.role, m.note));
    list.append(li);
    li.scrollIntoView({ block: "end" });
    return li;
  }
  function lastMessage() { return state.messages[state.messages.length - 1]; }
  // an answer whose stream ended without its end marker: stored as "dropped", offered again with Retry
  function lastIncomplete() {
    const last = lastMessage();
    return !!(last && last.role === "assistant" && last.incomplete && !last.note);
  }
  const CUT_OFF = "The answer was cut off before it finished. Press Retry for a complete answer, or react to this one.";
  function needsReaction() {
    const last = lastMessage();
    return requireReaction && last && last.role === "assistant" && !last.note;
  }
  function refresh() {
    const owed = needsReaction();
    const waiting = state.awaiting_answer;
    reactionBox.hidden = !owed;
    composer.classList.toggle("disabled", owed || waiting);
    messageEl.disabled = reasonEl.disabled = sendBtn.disabled = owed || waiting || busy || !state.open;
    retryBtn.hidden = !((waiting || lastIncomplete()) && !busy);
    if (owed) reactionEl.focus();
  }

  function showAnswer(msg) {
    const prev = lastMessage();
    if (prev && prev.role === "assistant" && prev.incomplete && !prev.note) {  // a retried cut-off answer
      state.messages.pop();
      const old = list.querySelector('li[data-id="' + prev.id + '"]');
      if (old) old.remove();
    }
    const li = addMessage({ id: msg.id, role: "assistant", content: msg.content, html: msg.html });
    if (msg.incomplete) li.classList.add("incomplete");
    state.messages.push({ id: msg.id, role: "assistant", content: msg.content, html: msg.html, note: null,
                          incomplete: !!msg.incomplete });
    state.awaiting_answer = false;
  }

  // After a broken stream: the server may have stored the answer before the connection dropped. Ask it,
  // so the page shows what is really stored; if nothing is, Retry is shown (no reload needed).
  async function recover(message) {
    try {
      const resp = await fetch("/api/c/" + cid + "/state", { credentials: "same-origin" });
      if (resp.ok) {
        const fresh = await resp.json();
        const last = fresh.messages[fresh.messages.length - 1];
        if (last && last.role === "assistant" && !state.messages.some(function (m) { return m.id === last.id; })) {
          showAnswer(last);
          setStatus("");
          return;
        }
        state.awaiting_answer = fresh.awaiting_answer;
        state.open = fresh.open;
      }
    } catch (e) { /* still offline: keep the Retry button */ }
    setStatus(message, true);
  }

  function idle() {
    busy = false;
    refresh();
    if (finishWhenIdle && Date.now() > deadline && !needsReaction()) finishForm.submit();
  }

  async function generate() {
    busy = true; refresh();
    setStatus("The assistant is writing…");
    let li = null;
    let finalMsg = null, streamError = null;
    try {
      const resp = await postJSON("/api/c/" + cid + "/generate");
      if (!resp.ok) { setStatus(await errorOf(resp), true); return; }
      li = addMessage({ role: "assistant", content: "" });
      li.classList.add("streaming");
      const body = li.querySelector(".plain");
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, nl); buffer = buffer.slice(nl + 1);
          if (!line.trim()) continue;
          const ev = JSON.parse(line);
          if (ev.type === "delta") body.textContent += ev.text;
          else if (ev.type === "done") finalMsg = ev;
          else if (ev.type === "error") streamError = ev.error;
        }
      }
    } catch (e) {
      streamError = null;  // the connection broke: fall through to recovery below
    } finally {
      if (!finalMsg) {
        if (li) li.remove();
        // whatever happened, "writing" must not stay on screen once the stream is gone
        if (li || streamError) await recover(streamError || "The answer was cut off. Your message is saved; press Retry.");
        else if (/writing/.test(statusEl.textContent) || !statusEl.textContent) await recover("Network problem: the assistant did not answer. Your message is saved; press Retry.");
      } else {
        li.remove();
        showAnswer({ id: finalMsg.message_id, content: finalMsg.content, html: finalMsg.html,
                     incomplete: finalMsg.incomplete });
        setStatus(finalMsg.incomplete ? CUT_OFF : "", !!finalMsg.incomplete);
      }
      idle();
    }
  }

  async function send() {
    const content = messageEl.value.trim();
    const reason = reasonEl.value.trim();
    if (!content) { setStatus("Please write a message.", true); return; }
    if (requireReason && !reason) { setStatus("Please write why you send this message (your reason).", true); reasonEl.focus(); return; }
    if (labelsMode === "required" && reasonLabelEl && !reasonLabelEl.value) { setStatus("Please choose a type for your reason.", true); return; }
    busy = true; refresh();
    let resp;
    try {
      resp = await postJSON("/api/c/" + cid + "/messages", {
        content: content, reason: reason, reason_label: reasonLabelEl ? reasonLabelEl.value || null : null,
        idempotency_key: keyFor("message"), reason_typing: reasonTyping.read(),
      });
    } catch (e) { setStatus("Network problem: nothing was sent; press Send again.", true); idle(); return; }
    busy = false;
    if (!resp.ok) { setStatus(await errorOf(resp), true); idle(); return; }
    reasonTyping.reset();
    const data = await resp.json();
    dropKey("message");
    messageEl.value = ""; reasonEl.value = ""; if (reasonLabelEl) reasonLabelEl.value = "";
    state.messages.push(data.message);
    state.awaiting_answer = true;
    addMessage(data.message);
    await generate();
  }

  async function react() {
    const last = lastMessage();
    const content = reactionEl.value.trim();
    if (!content) { setStatus("Please write what you think of the answer (your reaction).", true); return; }
    if (labelsMode === "required" && reactionLabelEl && !reactionLabelEl.value) { setStatus("Please choose a type for your reaction.", true); return; }
    let resp;
    try {
      resp = await postJSON("/api/c/" + cid + "/messages/" + last.id + "/reaction", {
        content: content, label: reactionLabelEl ? reactionLabelEl.value || null : null,
        idempotency_key: keyFor("reaction-" + last.id), typing: reactionTyping.read(),
      });
    } catch (e) { setStatus("Network problem: the reaction was not saved; press Save again.", true); return; }
    if (!resp.ok) { setStatus(await errorOf(resp), true); return; }
    const data = await resp.json();
    reactionTyping.reset();
    dropKey("reaction-" + last.id);
    last.note = { content: data.reaction.content, label: data.reaction.label };
    const li = list.querySelector('li[data-id="' + CSS.escape(last.id) + '"]');
    if (li) li.append(noteEl("assistant", last.note));
    reactionEl.value = ""; if (reactionLabelEl) reactionLabelEl.value = "";
    setStatus("");
    refresh();
    messageEl.focus();
  }

  async function studyTick() {
    if (studyDeadline === null || studyEnded) return;
    const left = studyDeadline - Date.now();
    if (left <= 0) {
      studyEnded = true;
      const content = messageEl.value, reason = reasonEl.value;
      if (content.trim() || reason.trim()) {
        setStatus("The study's time limit has passed: saving what you typed as a draft…", true);
        try {
          const resp = await postJSON("/api/c/" + cid + "/messages", { content: content, reason: reason,
            idempotency_key: keyFor("message") });
          if (resp.ok) { dropKey("message"); }
        } catch (e) { /* offline: the page still moves on; nothing more can be saved */ }
      }
      location.href = "/end";
    } else if (left < 120000 && !studyWarned) {
      studyWarned = true;
      setStatus("The study's time limit ends in under 2 minutes: send what you are writing now " +
                "(whatever is still typed then is saved as a draft).", true);
    }
  }

  function tick() {
    studyTick();
    const left = Math.max(0, Math.round((deadline - Date.now()) / 1000));
    timerEl.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0") + " left";
    timerEl.classList.toggle("low", left < 60);
    if (left <= 0) {
      clearInterval(timer);
      // never end the task while an answer is streaming in: finish once it has arrived (and been reacted to)
      finishWhenIdle = true;
      if (busy) { setStatus("Time is up: the answer is still arriving; you will move on after it.", false); return; }
      if (needsReaction()) { setStatus("Time is up: please write your reaction to the last answer, then you will move on.", true); return; }
      finishForm.submit();
    }
  }

  state.messages.forEach(function (m) { const li = addMessage(m); if (m.incomplete) li.classList.add("incomplete"); });
  sendBtn.addEventListener("click", send);
  retryBtn.addEventListener("click", generate);
  reactionBtn.addEventListener("click", async function () {
    await react();
    if (Date.now() > deadline && !needsReaction() && !busy) finishForm.submit();
  });
  messageEl.addEventListener("keydown", function (e) { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) send(); });
  const timer = setInterval(tick, 1000);
  tick();
  refresh();
  if (state.awaiting_answer) setStatus("Your last message has no answer yet; press Retry.", true);
  else if (lastIncomplete()) setStatus(CUT_OFF, true);
})();
