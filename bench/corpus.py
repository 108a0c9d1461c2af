"""The quality benchmark's documents: real published PDFs shipped inside Debian packages, cut into pages.

Nobody on this project wrote them: manuals of R, gnuplot, Asymptote, Octave, expEYES and gri, font package
documentation with formulas, the Debian Edu manual in Simplified Chinese, the xeCJK manual and a Chinese font
specimen. They cover prose, code, two and three columns, tables, formulas, plots and screenshots.

`prepare(cache)` downloads each package once with `apt-get download` (Debian's own client; the pinned
version first, else whatever version the machine's apt lists offer), unpacks it with `dpkg-deb`, and writes
each chosen page as its own one-page PDF and as a PNG rendered at the engine's PDF scale (144 dpi), next to
the page's own text layer, the ground truth. Everything lives in the cache directory, which git ignores.
"""

from __future__ import annotations

import gzip
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pypdfium2 as pdfium

RENDER_SCALE = 2.0   # the engine's default PDF scale: a PNG page has the pixels a PDF page is read at


@dataclass(frozen=True)
class Document:
    package: str
    version: str
    path: str            # inside the package
    pages: tuple[int, ...]   # 1-based
    language: str

    @property
    def name(self) -> str:
        return Path(self.path).name.removesuffix(".gz").removesuffix(".pdf")


DOCUMENTS = (
    Document("r-doc-pdf", "4.2.2.20221110-2", "usr/share/R/doc/manual/R-intro.pdf", (10, 25, 60), "en"),
    Document("r-doc-pdf", "4.2.2.20221110-2", "usr/share/R/doc/manual/R-lang.pdf", (12, 30), "en"),
    Document("gnuplot-doc", "5.4.4+dfsg1-2", "usr/share/doc/gnuplot/gnuplot.pdf", (20, 104, 156), "en"),
    Document("asymptote-doc", "2.85+ds-1", "usr/share/doc/asymptote/asymptote.pdf", (4, 20, 66, 99), "en"),
    Document("asymptote-doc", "2.85+ds-1", "usr/share/doc/asymptote/CAD.pdf", (2, 4), "en"),
    Document("octave-doc", "7.3.0-2", "usr/share/doc/octave/refcard-a4.pdf", (1, 2), "en"),
    Document("octave-doc", "7.3.0-2", "usr/share/doc/octave/octave.pdf", (30, 387), "en"),
    Document("expeyes-doc-en", "4.3-3", "usr/share/expeyes/doc/en-eyes.pdf", (3, 44, 66), "en"),
    Document("expeyes-doc-en", "4.3-3", "usr/share/expeyes/doc/en-eyesj.pdf", (22, 33), "en"),
    Document("texlive-fonts-recommended-doc", "2022.20230122-3",
             "usr/share/doc/texlive-doc/fonts/txfonts/txfontsdoc.pdf", (4, 11), "en"),
    Document("texlive-fonts-recommended-doc", "2022.20230122-3",
             "usr/share/doc/texlive-doc/latex/mathpazo/pazotest.pdf", (3, 6), "en"),
    Document("gri-pdf-doc", "2.12.27-1.1", "usr/share/doc/gri/gri.pdf.gz", (96, 143),
             "en"),
    Document("debian-edu-doc-zh-cn", "2.12.23~deb12u1",
             "usr/share/doc/debian-edu-doc-zh-cn/debian-edu-bookworm-manual.pdf",
             (7, 10, 22, 59, 69, 71), "zh"),
    Document("fonts-lxgw-wenkai-doc", "1.250+repack-1", "usr/share/doc/fonts-lxgw-wenkai/examples/demo.pdf",
             (1,), "zh"),
    Document("texlive-lang-cjk", "2022.20230122-1", "usr/share/doc/texlive-doc/xelatex/xecjk/xeCJK.pdf",
             (3, 5, 12, 102), "zh"),
    Document("texlive-lang-cjk", "2022.20230122-1", "usr/share/doc/texlive-doc/xelatex/zitie/zitie-cn.pdf",
             (3,), "zh"),
)


@dataclass(frozen=True)
class Page:
    document: str
    number: int
    language: str
    pdf: Path        # the page alone, as a one-page PDF
    png: Path        # the page rendered at RENDER_SCALE
    truth: str       # the page's own text layer

    @property
    def name(self) -> str:
        return f"{self.document} p{self.number}"


def prepare(cache: Path) -> list[Page]:
    """Every page of `DOCUMENTS`, fetched and cut once into `cache`."""
    cache.mkdir(parents=True, exist_ok=True)
    pages = []
    for document in DOCUMENTS:
        source = _document_file(cache, document)
        for number in document.pages:
            stem = cache / "pages" / f"{document.name}-p{number}"
            if not stem.with_suffix(".txt").is_file():
                _cut_page(source, number, stem)
            pages.append(Page(document.name, number, document.language, stem.with_suffix(".pdf"),
                              stem.with_suffix(".png"), stem.with_suffix(".txt").read_text(encoding="utf-8")))
    return pages


def _document_file(cache: Path, document: Document) -> Path:
    target = cache / "documents" / f"{document.name}.pdf"
    if target.is_file():
        return target
    deb = _download(cache / "debs", document.package, document.version)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        data = (Path(tmp) / document.path).read_bytes()
    if document.path.endswith(".gz"):
        data = gzip.decompress(data)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


def _download(folder: Path, package: str, version: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    found = sorted(folder.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    for spec in (f"{package}={version}", package):
        done = subprocess.run(["apt-get", "download", spec], cwd=folder, capture_output=True, text=True)
        found = sorted(folder.glob(f"{package}_*.deb"))
        if done.returncode == 0 and found:
            if spec == package:
                print(f"note: {package} {version} is not in the apt lists; using {found[-1].name}")
            return found[-1]
    raise SystemExit(f"cannot download the Debian package {package} (run `apt-get update` first?): "
                     f"{done.stderr.strip()[-300:]}")


def _cut_page(source: Path, number: int, stem: Path) -> None:
    """The page as a one-page PDF, its PNG render and its text layer (the `.txt` is written last)."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    whole = pdfium.PdfDocument(str(source))
    single = pdfium.PdfDocument.new()
    try:
        single.import_pages(whole, [number - 1])
        single.save(str(stem.with_suffix(".pdf")))
        page = single[0]
        page.render(scale=RENDER_SCALE).to_pil().convert("RGB").save(stem.with_suffix(".png"))
        text = page.get_textpage().get_text_range()
    finally:
        single.close()
        whole.close()
    stem.with_suffix(".txt").write_text(text, encoding="utf-8")
