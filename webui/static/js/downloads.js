// The result as files: the Markdown of every page, a JSON array of the result lines, or the JSONL itself.
// Only what has arrived so far; the images stay links to the server (they expire with the job).

function markdownOfPage(line) {
  const page = line.result.layoutParsingResults[0].markdown ?? { text: "", images: {} };
  let text = page.text;
  for (const [path, link] of Object.entries(page.images ?? {})) text = text.split(path).join(link);
  return text;
}

export function markdownOf(lines) {
  return lines.map((line) => markdownOfPage(line.page)).filter((text) => text.trim()).join("\n\n") + "\n";
}

export function jsonOf(lines) {
  return JSON.stringify(lines.map((line) => line.page), null, 2) + "\n";
}

export function jsonlOf(lines) {
  return lines.map((line) => line.text).join("\n") + "\n";
}

/** Offer `text` as a file named `name` (the browser's download, nothing leaves the page). */
export function save(name, text, type) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([text], { type }));
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}
