// The page's wiring: read the server's settings, submit the form as a job, follow its progress and show each
// page as soon as its result line arrives; cancel; download. Nothing here knows how a page is drawn
// (render.js) or what the words are (i18n.js).

import * as api from "./api.js";
import * as downloads from "./downloads.js";
import { clear, initialLanguage, label, setLanguage } from "./i18n.js";
import { pageItem } from "./render.js";

const $ = (id) => document.getElementById(id);
const FINISHED = new Set(["done", "failed"]);
let config = null;
let job = null;   // the job on show: {id, key, name, lines, controller}

/** A message for the person, by its i18n key (a refusal from the page itself, before any request). */
class Notice extends Error {
  constructor(key, vars = {}) {
    super(key);
    this.key = key;
    this.vars = vars;
  }
}

function showMessage(key, vars = {}, logId = null) {
  label($("message-text"), key, vars);
  if (logId) label($("message-log"), "logId", { logId });
  else clear($("message-log"));
  $("message").hidden = false;
}

function showError(error) {
  if (error instanceof Notice) showMessage(error.key, error.vars);
  else if (error instanceof api.ApiError) {
    showMessage(error.status === 401 ? "errorKey" : "errorServer", { reason: error.message }, error.logId);
  } else if (error instanceof TypeError) showMessage("errorNetwork");
  else showMessage("errorServer", { reason: String(error?.message ?? error) });
}

function options() {
  const chosen = {
    useLayoutDetection: $("opt-layout").checked,
    visualize: $("opt-visualize").checked,
    useDocOrientationClassify: $("opt-orientation").checked,
    useDocUnwarping: $("opt-unwarping").checked,
    useChartRecognition: $("opt-chart").checked,
    useSealRecognition: $("opt-seal").checked,
    formatBlockContent: $("opt-format").checked,
  };
  if (!chosen.useLayoutDetection) chosen.promptLabel = $("opt-prompt").value;
  return chosen;
}

function showProgress(data) {
  const { totalPages: total, extractedPages: done } = data.extractProgress;
  const progress = $("progress");
  progress.max = Math.max(total, 1);
  progress.value = done;
  if (total > 0) label($("count"), "pagesCount", { done, total });
  const cancelled = data.state === "failed" && data.errorMsg === "cancelled";
  const state = cancelled ? "cancelled" : data.state;
  const words = { pending: "statusPending", running: "statusRunning", done: "statusDone",
                  failed: "statusFailed", cancelled: "statusCancelled" };
  label($("state"), words[state], { reason: data.errorMsg ?? "" });
  $("job").dataset.state = FINISHED.has(data.state) ? state : "following";
  $("cancel").disabled = FINISHED.has(data.state);
}

function addPage(line) {
  const position = job.lines.push(line) - 1;
  $("pages").append(pageItem(line.page, position));
  for (const button of $("job").querySelectorAll(".download")) button.disabled = false;
}

async function readLines(current, link) {
  for await (const line of api.resultLines(link, current.controller.signal)) {
    if (current === job) addPage(line);
  }
}

/** Follow a job to its end: its events, else (when they break off) its status once a second. */
async function follow(current) {
  let last = null;
  let reading = null;
  const update = (data) => {
    last = data;
    showProgress(data);
    const link = data.resultUrl?.jsonUrl;
    if (link && !reading) reading = readLines(current, link).catch(showError);
  };
  try {
    for await (const data of api.progress(current.id, current.key, current.controller.signal)) update(data);
  } catch (error) {
    if (error instanceof api.ApiError || current.controller.signal.aborted) throw error;
  }
  while (!last || !FINISHED.has(last.state)) {
    await new Promise((resolve) => setTimeout(resolve, 1000));
    update(await api.status(current.id, current.key));
  }
  await reading;
  $("job").dataset.ended = "true";   // both streams are over: nothing more will arrive
}

function checkedInput() {
  const file = $("file").files[0] ?? null;
  const url = $("url").value.trim();
  if (!file && !url) throw new Notice("errorNoInput");
  if (file && url) throw new Notice("errorBothInputs");
  if (file && file.size > config.maxFileBytes) {
    const mb = (bytes) => (bytes / 1048576).toFixed(1);
    throw new Notice("errorTooLarge", { size: mb(file.size), max: mb(config.maxFileBytes) });
  }
  return { file, url, name: (file?.name ?? url.split("/").pop()).replace(/\.[^.]*$/, "") || "document" };
}

function resetResults() {
  job?.controller.abort();
  job = null;
  $("message").hidden = true;
  $("pages").replaceChildren();
  $("job").hidden = true;
  delete $("job").dataset.ended;
  clear($("count"));
  for (const button of $("job").querySelectorAll(".download")) button.disabled = true;
}

async function start(event) {
  event.preventDefault();
  resetResults();
  $("start").disabled = true;
  try {
    const input = checkedInput();
    const key = $("key").value.trim();
    sessionStorage.setItem("apiKey", key);
    $("job").hidden = false;
    $("job").dataset.state = "submitting";
    label($("state"), "statusSubmitting");
    $("cancel").disabled = true;
    const id = await api.submit({ ...input, model: config.model, options: options(),
                                  pageRanges: $("opt-pages").value.trim(), key });
    job = { id, key, name: input.name, lines: [], controller: new AbortController() };
    $("job").dataset.jobId = id;
    await follow(job);
  } catch (error) {
    if (!(error?.name === "AbortError")) {
      $("job").hidden = !job;
      showError(error);
    }
  } finally {
    $("start").disabled = false;
  }
}

async function cancel() {
  if (!job) return;
  $("cancel").disabled = true;
  try {
    showProgress(await api.cancel(job.id, job.key));
  } catch (error) {
    showError(error);
  }
}

function offer(kind) {
  if (!job?.lines.length) return;
  const files = {
    markdown: [".md", downloads.markdownOf, "text/markdown"],
    json: [".json", downloads.jsonOf, "application/json"],
    jsonl: [".jsonl", downloads.jsonlOf, "application/x-ndjson"],
  };
  const [suffix, make, type] = files[kind];
  downloads.save(job.name + suffix, make(job.lines), type);
}

function wireForm() {
  const file = $("file");
  const showName = () => {
    if (file.files[0]) label($("file-name"), "fileChosen", { name: file.files[0].name });
    else clear($("file-name"));
  };
  file.addEventListener("change", showName);
  const drop = $("drop");
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    if (event.dataTransfer.files.length) file.files = event.dataTransfer.files;
    showName();
  });
  $("opt-layout").addEventListener("change", (event) => { $("opt-prompt").disabled = event.target.checked; });
  $("submit-form").addEventListener("submit", start);
  $("cancel").addEventListener("click", cancel);
  for (const button of document.querySelectorAll(".download")) {
    button.addEventListener("click", () => offer(button.dataset.kind));
  }
  $("language").addEventListener("change", (event) => setLanguage(event.target.value));
}

async function main() {
  const language = initialLanguage();
  $("language").value = language;
  setLanguage(language);
  wireForm();
  $("key").value = sessionStorage.getItem("apiKey") ?? "";
  try {
    config = await api.loadConfig();
  } catch (error) {
    showMessage("errorConfig", { reason: error.message });
    return;
  }
  label($("model"), "servedModel", { model: config.model });
  $("key-field").hidden = !config.apiKeyRequired;
  if (!config.jobApi) {
    showMessage("errorJobApiOff");
    return;
  }
  $("start").disabled = false;
  document.body.dataset.ready = "true";
}

main();
