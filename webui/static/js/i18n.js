// The page's words in English and Chinese. An element names its text with data-i18n="key" (and its
// variables with data-i18n-vars='{"n": 3}'); translate() fills every such element, so a text set once is
// right again after the language switches.

export const STRINGS = {
  en: {
    title: "PaddleOCR-VL document parsing",
    heading: "Document parsing",
    skip: "Skip to the results",
    language: "Language",
    apiDocs: "API docs",
    servedModel: "Model: {model}",
    inputHeading: "Document",
    fileLabel: "Drop a PDF or image here, or choose one",
    fileChosen: "Chosen: {name}",
    urlLabel: "Or the document's URL",
    keyLabel: "API key",
    keyHint: "This server asks for a key; it is kept in this tab only.",
    options: "Options",
    optLayout: "Detect the layout",
    optPrompt: "Without layout detection, read the page as",
    promptOcr: "text", promptFormula: "a formula", promptTable: "a table", promptChart: "a chart",
    promptSeal: "a seal", promptSpotting: "located text",
    optVisualize: "Return page images",
    optPages: "Pages, e.g. 1-3,5 (empty: all)",
    optOrientation: "Turn pages upright",
    optUnwarping: "Flatten curved pages",
    optChart: "Recognise charts",
    optSeal: "Recognise seals",
    optFormat: "Block content as Markdown",
    start: "Parse",
    resultsHeading: "Result",
    resultsEmpty: "Choose a document and press Parse: its pages appear here one by one.",
    cancel: "Cancel",
    downloadMarkdown: "Download Markdown",
    downloadJson: "Download JSON",
    downloadJsonl: "Download JSONL",
    statusSubmitting: "Uploading…",
    statusPending: "Waiting to start…",
    statusRunning: "Parsing…",
    statusDone: "Done.",
    statusFailed: "Failed: {reason}",
    statusCancelled: "Cancelled.",
    pagesCount: "{done} / {total} pages",
    page: "Page {n}",
    pageNoImage: "No page image (page images are off).",
    boxLabel: "Block {order}: {label}",
    errorNoInput: "Choose a file or enter a URL first.",
    errorBothInputs: "Choose a file or enter a URL, not both.",
    errorTooLarge: "The file is {size} MB, over this server's limit of {max} MB.",
    errorKey: "The server needs a valid API key: {reason}",
    errorServer: "The server refused it: {reason}",
    errorNetwork: "The server cannot be reached. Check the connection and try again.",
    errorJobApiOff: "This server has its Job API turned off (HPS_JOB_ENABLED), and the page needs it.",
    errorConfig: "The page could not read this server's settings: {reason}",
    logId: "log id {logId}",
  },
  zh: {
    title: "PaddleOCR-VL 文档解析",
    heading: "文档解析",
    skip: "跳到结果",
    language: "语言",
    apiDocs: "API 文档",
    servedModel: "模型：{model}",
    inputHeading: "文档",
    fileLabel: "把 PDF 或图片拖到这里，或选择一个文件",
    fileChosen: "已选择：{name}",
    urlLabel: "或文档的网址",
    keyLabel: "API 密钥",
    keyHint: "此服务需要密钥；密钥只保存在本标签页中。",
    options: "选项",
    optLayout: "版面检测",
    optPrompt: "不做版面检测时，把整页识别为",
    promptOcr: "文字", promptFormula: "公式", promptTable: "表格", promptChart: "图表",
    promptSeal: "印章", promptSpotting: "带位置的文字",
    optVisualize: "返回页面图像",
    optPages: "页码，如 1-3,5（留空：全部）",
    optOrientation: "自动转正页面",
    optUnwarping: "矫正弯曲页面",
    optChart: "识别图表",
    optSeal: "识别印章",
    optFormat: "区块内容使用 Markdown",
    start: "解析",
    resultsHeading: "结果",
    resultsEmpty: "选择文档后点击“解析”：各页会逐一显示在这里。",
    cancel: "取消",
    downloadMarkdown: "下载 Markdown",
    downloadJson: "下载 JSON",
    downloadJsonl: "下载 JSONL",
    statusSubmitting: "正在上传…",
    statusPending: "等待开始…",
    statusRunning: "正在解析…",
    statusDone: "完成。",
    statusFailed: "失败：{reason}",
    statusCancelled: "已取消。",
    pagesCount: "{done} / {total} 页",
    page: "第 {n} 页",
    pageNoImage: "没有页面图像（未开启返回页面图像）。",
    boxLabel: "区块 {order}：{label}",
    errorNoInput: "请先选择文件或填写网址。",
    errorBothInputs: "请选择文件或填写网址，二者择一。",
    errorTooLarge: "文件大小为 {size} MB，超过此服务的上限 {max} MB。",
    errorKey: "此服务需要有效的 API 密钥：{reason}",
    errorServer: "服务拒绝了请求：{reason}",
    errorNetwork: "无法连接服务。请检查网络后重试。",
    errorJobApiOff: "此服务关闭了 Job API（HPS_JOB_ENABLED），本页面需要它。",
    errorConfig: "页面无法读取此服务的设置：{reason}",
    logId: "日志 ID {logId}",
  },
};

export const LANGUAGES = Object.keys(STRINGS);
let current = "en";

/** The language to start in: the one chosen here before, else the browser's first of zh and en. */
export function initialLanguage() {
  const saved = localStorage.getItem("language");
  if (LANGUAGES.includes(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language]) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "en";
}

export function t(key, vars = {}) {
  const text = STRINGS[current][key] ?? STRINGS.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
}

/** Give `element` the text `key` (kept on it, so that a language switch translates it again). */
export function label(element, key, vars = {}) {
  element.dataset.i18n = key;
  element.dataset.i18nVars = JSON.stringify(vars);
  element.textContent = t(key, vars);
  return element;
}

/** Empty `element`, and forget its text key. */
export function clear(element) {
  delete element.dataset.i18n;
  delete element.dataset.i18nVars;
  element.textContent = "";
}

export function setLanguage(language, root = document) {
  current = LANGUAGES.includes(language) ? language : "en";
  localStorage.setItem("language", current);
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, JSON.parse(element.dataset.i18nVars || "{}"));
  }
  for (const element of root.querySelectorAll("[data-i18n-aria-label]")) {
    const vars = JSON.parse(element.dataset.i18nVars || "{}");
    element.setAttribute("aria-label", t(element.dataset.i18nAriaLabel, vars));
  }
  document.title = t("title");
}
