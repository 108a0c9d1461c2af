// The gateway's Job API as the page uses it. Paths are relative to the page, so that it also works behind a
// proxy that serves the gateway under a prefix. Progress comes as server-sent events, which need the API key
// header: EventSource cannot send one, so they are read with fetch().

const JOBS = "api/v2/ocr/jobs";

/** A refusal by the server: its message, HTTP status and logId (`{code, msg, logId}` on job routes). */
export class ApiError extends Error {
  constructor(message, status, logId) {
    super(message);
    this.status = status;
    this.logId = logId;
  }
}

function headers(key) {
  return key ? { Authorization: `Bearer ${key}` } : {};
}

async function json(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's error page, say; the status tells what happened
  }
  if (!response.ok) {
    const message = body?.msg ?? body?.errorMsg ?? `HTTP ${response.status} ${response.statusText}`;
    throw new ApiError(message, response.status, body?.logId ?? response.headers.get("X-Request-Id"));
  }
  return body;
}

export async function loadConfig() {
  return json(await fetch("ui/config", { cache: "no-store" }));
}

/** Submit a file (multipart) or a URL (JSON); answers the job's id. */
export async function submit({ file, url, model, options, pageRanges, key }) {
  let body;
  const sent = { ...headers(key) };
  if (file) {
    body = new FormData();
    body.append("file", file, file.name);
    body.append("model", model);
    body.append("optionalPayload", JSON.stringify(options));
    if (pageRanges) body.append("pageRanges", pageRanges);
  } else {
    sent["Content-Type"] = "application/json";
    body = JSON.stringify({ fileUrl: url, model, optionalPayload: options, pageRanges: pageRanges || null });
  }
  const answer = await json(await fetch(JOBS, { method: "POST", headers: sent, body }));
  return answer.data.jobId;
}

export async function status(jobId, key) {
  return (await json(await fetch(`${JOBS}/${jobId}`, { headers: headers(key), cache: "no-store" }))).data;
}

export async function cancel(jobId, key) {
  return (await json(await fetch(`${JOBS}/${jobId}`, { method: "DELETE", headers: headers(key) }))).data;
}

/** Lines of a streamed text body, each as soon as it is complete. */
async function* textLines(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let rest = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    rest += value;
    const lines = rest.split("\n");
    rest = lines.pop();
    yield* lines;
  }
  if (rest) yield rest;
}

/** The job's status data at each change, from its `events` stream, until the job ends or `signal` aborts. */
export async function* progress(jobId, key, signal) {
  const response = await fetch(`${JOBS}/${jobId}/events`, { headers: headers(key), signal });
  if (!response.ok) await json(response);
  let data = [];
  for await (const line of textLines(response)) {
    if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    else if (line === "" && data.length) {
      yield JSON.parse(data.join("\n"));
      data = [];
    }
  }
}

/** The job's result lines (one page each, as parsed JSON) from its pre-signed link, as they are written. */
export async function* resultLines(link, signal) {
  const response = await fetch(link, { signal, cache: "no-store" });
  if (!response.ok) await json(response);
  for await (const line of textLines(response)) {
    if (line.trim()) yield { text: line, page: JSON.parse(line) };
  }
}
