// glm-chat console: confirmations, and the playground's streamed answers. Text from the model
// is only ever set as textContent, never as HTML.
"use strict";

document.addEventListener("submit", (event) => {
  const form = event.target;
  const question = form.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

function bubble(list, kind, text) {
  const item = document.createElement("li");
  item.className = "bubble " + kind;
  item.textContent = text;
  list.appendChild(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message", data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

function setUpPlayground(form) {
  const box = form.querySelector("textarea");
  const button = form.querySelector("button");
  const list = document.getElementById("transcript");
  box.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const message = box.value.trim();
    if (!message || button.disabled) return;
    const hint = document.getElementById("hint");
    if (hint) hint.remove();
    button.disabled = true;
    box.value = "";
    bubble(list, "me", message);
    const answer = bubble(list, "bot pending", "");
    let text = "";
    let finished = false;
    try {
      const response = await fetch(form.dataset.endpoint, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept": "text/event-stream" },
        body: JSON.stringify({ message }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.detail || ("请求失败（" + response.status + "）"));
      }
      await readEvents(response, (name, data) => {
        if (name === "delta") { text += data.text; answer.textContent = text; }
        else if (name === "done") { answer.textContent = data.answer; finished = true; }
        else if (name === "error") { throw new Error(data.message); }
        answer.scrollIntoView({ block: "end" });
      });
      if (!finished) throw new Error("回答中断了，请重试。");
      answer.classList.remove("pending");
    } catch (error) {
      answer.classList.remove("pending");
      answer.classList.add("failed");
      answer.textContent = error.message || "出错了";
    } finally {
      button.disabled = false;
      box.focus();
    }
  });
}

const playground = document.getElementById("playground");
if (playground) setUpPlayground(playground);
