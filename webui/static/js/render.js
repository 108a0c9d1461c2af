// One page of a result as the person sees it: the page image with its layout boxes drawn over it (label and
// reading order), and beside it each block's content rendered: Markdown, HTML tables, formulas by KaTeX.
// A box and its block light up together on hover or focus; a click (or Enter) keeps them lit and scrolls
// the block into view.

import { label, t } from "./i18n.js";

const SVG = "http://www.w3.org/2000/svg";
const KINDS = [
  ["title", /title/], ["table", /table/], ["formula", /formula/], ["picture", /image|chart|seal|figure/],
  ["aside", /header|footer|number|footnote|aside/],
];

const markdown = window.markdownit({ html: true }).use(window.texmath, {
  engine: window.katex, delimiters: "dollars", katexOptions: { throwOnError: false },
});

/** Markdown (with HTML) as sanitised DOM; images named by their `imgs/...` path get their result links. */
export function renderMarkdown(text, images = {}) {
  const fragment = window.DOMPurify.sanitize(markdown.render(text || ""), { RETURN_DOM_FRAGMENT: true });
  for (const image of fragment.querySelectorAll("img")) {
    const link = images[image.getAttribute("src")];
    if (link) image.src = link;
    else image.removeAttribute("src");
  }
  return fragment;
}

function kindOf(blockLabel) {
  return KINDS.find(([, pattern]) => pattern.test(blockLabel))?.[0] ?? "text";
}

function element(tag, className, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  node.append(...children);
  return node;
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

function boxOf(block, index, fontSize) {
  const [x1, y1, x2, y2] = block.block_bbox;
  const order = block.block_order ?? "–";
  const group = svgElement("g", { class: "box", tabindex: "0", role: "button", "data-block": index,
                                  "data-kind": kindOf(block.block_label) });
  group.dataset.i18nAriaLabel = "boxLabel";
  group.dataset.i18nVars = JSON.stringify({ order, label: block.block_label });
  group.setAttribute("aria-label", t("boxLabel", { order, label: block.block_label }));
  const size = { width: Math.max(x2 - x1, 1), height: Math.max(y2 - y1, 1) };
  group.append(svgElement("rect", { x: x1, y: y1, ...size }));
  const above = y1 > fontSize * 1.2;   // the caption sits on the box's top edge (inside at the page's top)
  const caption = svgElement("text", { x: x1, y: above ? y1 - fontSize * 0.25 : y1 + fontSize,
                                       "font-size": fontSize });
  caption.textContent = `${order} ${block.block_label}`;
  group.append(caption);
  return group;
}

function pageView(result, heading) {
  const { width, height } = result.prunedResult;
  const figure = element("figure", "page-view");
  figure.setAttribute("aria-labelledby", heading.id);
  const canvas = element("div", "canvas");
  canvas.style.aspectRatio = `${width} / ${height}`;
  if (result.inputImage) {
    const image = element("img");
    image.src = result.inputImage;
    image.alt = "";
    image.loading = "lazy";   // a long document's pages load as they are scrolled to
    canvas.append(image);
  } else {
    canvas.append(label(element("p", "no-image"), "pageNoImage"));
  }
  const overlay = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
  const fontSize = Math.max(width, height) / 55;
  result.prunedResult.parsing_res_list.forEach((block, i) => overlay.append(boxOf(block, i, fontSize)));
  canvas.append(overlay);
  figure.append(canvas);
  return figure;
}

function blockList(result) {
  const ignored = new Set(result.prunedResult.model_settings?.markdown_ignore_labels ?? []);
  const images = result.markdown?.images ?? {};
  const list = element("div", "page-text");
  result.prunedResult.parsing_res_list.forEach((block, i) => {
    const kind = ignored.has(block.block_label) ? "aside" : kindOf(block.block_label);
    const tag = element("span", "tag", `${block.block_order ?? "–"} ${block.block_label}`);
    const item = element("div", "block", tag, element("div", "content"));
    item.dataset.block = i;
    item.dataset.kind = kind;
    item.lastChild.append(renderMarkdown(block.block_content, images));
    list.append(item);
  });
  return list;
}

/** Light up block `index` of a page (its box and its content); -1: none. */
function highlight(page, index) {
  for (const node of page.querySelectorAll(".box, .block")) {
    node.classList.toggle("active", Number(node.dataset.block) === index);
  }
}

function linkBoxesAndBlocks(page) {
  let pinned = -1;
  const indexOf = (event) => Number(event.target.closest("[data-block]")?.dataset.block ?? -1);
  const choose = (event) => {
    pinned = indexOf(event);
    highlight(page, pinned);
    page.querySelector(`.block[data-block="${pinned}"]`)?.scrollIntoView({ block: "nearest" });
  };
  const preview = (event) => { if (indexOf(event) >= 0) highlight(page, indexOf(event)); };
  page.addEventListener("mouseover", preview);
  page.addEventListener("mouseleave", () => highlight(page, pinned));
  page.addEventListener("focusin", preview);
  page.addEventListener("focusout", () => highlight(page, pinned));
  page.addEventListener("click", (event) => { if (event.target.closest(".box")) choose(event); });
  page.addEventListener("keydown", (event) => {
    if (event.target.closest(".box") && (event.key === "Enter" || event.key === " ")) {
      event.preventDefault();
      choose(event);
    }
  });
}

/** The list item of one JSONL line (`{result: {layoutParsingResults: [page], dataInfo}}`). */
export function pageItem(line, position) {
  const result = line.result.layoutParsingResults[0];
  const number = line.result.dataInfo?.pageNumber ?? position + 1;
  const heading = label(element("h3"), "page", { n: number });
  heading.id = `page-${position + 1}`;
  const item = element("li", "page", heading,
                       element("div", "page-body", pageView(result, heading), blockList(result)));
  item.dataset.page = number;
  linkBoxesAndBlocks(item);
  return item;
}
