"""Turn an uploaded file into UTF-8 plain text, streaming, with a progress callback.

Plain functions, no Django: `extract_text(source, dest, name, progress)` writes the text to `dest`
and returns the statistics, or raises `ExtractionError` with a message meant for the user.
Memory stays bounded by the format: text and HTML are decoded in 1 MiB pieces, PDF page by page,
DOCX paragraph by paragraph after its zip has been checked for archive bombs. Whatever the format,
the server runs this in a child process bounded in time and memory (`apps.documents.bounded`).
"""

import codecs
import html.parser
import io
import re
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import charset_normalizer
import olefile

Progress = Callable[[float], None]

PREVIEW_CHARS = 2000
READ_BYTES = 1024 * 1024
SNIFF_BYTES = 64 * 1024
DETECT_BYTES = 512 * 1024
# A byte that is a C0 control other than tab, newline, carriage return, form feed, backspace or escape
# is rare in text; past this share of the sample the file is treated as binary.
CONTROL_RATIO_LIMIT = 0.10
DOCX_MAX_UNCOMPRESSED = 500 * 1024 * 1024
DOCX_MAX_RATIO = 20
# The ratio only matters once the expansion is large: python-docx's own blank template inflates 22×.
DOCX_RATIO_APPLIES_ABOVE = 10 * 1024 * 1024
DOCX_MAX_ENTRIES = 10_000
# Per part, at every size: Word's XML deflates 3-30×; a part may reach 1 MiB at any ratio.
DOCX_MAX_ENTRY_RATIO = 100
DOCX_RATIO_SLACK = 1024 * 1024
DOCX_MAX_ENTRY_BYTES = 256 * 1024 * 1024

TEXT_FORMATS = {".txt": "txt", ".text": "txt", ".md": "md", ".markdown": "md", ".csv": "csv", ".tsv": "csv",
                ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".log": "txt", ".rst": "txt", ".xml": "xml",
                ".yaml": "yaml", ".yml": "yaml", ".toml": "toml", ".ini": "txt", ".cfg": "txt"}
CODE_EXTENSIONS = {
    ".py", ".pyi", ".js", ".mjs", ".cjs", ".ts", ".tsx", ".jsx", ".java", ".kt", ".kts", ".scala", ".c", ".h",
    ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".cs", ".go", ".rs", ".rb", ".php", ".pl", ".pm", ".swift", ".m",
    ".mm", ".r", ".jl", ".lua", ".sh", ".bash", ".zsh", ".fish", ".ps1", ".bat", ".sql", ".css", ".scss",
    ".sass", ".less", ".vue", ".svelte", ".hs", ".ml", ".mli", ".ex", ".exs", ".erl", ".clj", ".dart",
    ".groovy", ".gradle", ".tf", ".proto", ".graphql", ".ipynb", ".tex", ".el", ".vim", ".nim", ".zig",
    ".f90", ".asm", ".s", ".cmake", ".mk", ".dockerfile",
}
HTML_EXTENSIONS = {".html", ".htm", ".xhtml"}


class ExtractionError(Exception):
    """The file cannot become text; the message says why, for the user."""


def format_for(name: str) -> str:
    """The short format label stored on the document: txt, md, csv, json, html, pdf, docx, code, text…"""
    suffix = Path(name).suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix == ".docx":
        return "docx"
    if suffix in HTML_EXTENSIONS:
        return "html"
    if suffix in TEXT_FORMATS:
        return TEXT_FORMATS[suffix]
    if suffix in CODE_EXTENSIONS or Path(name).name.lower() in {"makefile", "dockerfile"}:
        return "code"
    return "text"


@dataclass
class ExtractionResult:
    chars: int
    lines: int
    preview: str
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_estimate(self) -> int:
        """About four characters per token: good enough to size a context, not a tokenizer."""
        return (self.chars + 3) // 4

    @property
    def note(self) -> str:
        return "; ".join(self.notes)


class TextSink:
    """Writes text to a UTF-8 file while counting characters and lines and keeping the preview."""

    def __init__(self, dest: Path) -> None:
        self._file = dest.open("w", encoding="utf-8", newline="\n")
        self.chars = 0
        self.newlines = 0
        self.last_char = ""
        self._preview: list[str] = []
        self._preview_len = 0

    def write(self, text: str) -> None:
        if not text:
            return
        self._file.write(text)
        self.chars += len(text)
        self.newlines += text.count("\n")
        self.last_char = text[-1]
        if self._preview_len < PREVIEW_CHARS:
            piece = text[: PREVIEW_CHARS - self._preview_len]
            self._preview.append(piece)
            self._preview_len += len(piece)

    def close(self) -> None:
        self._file.close()

    def result(self, notes: list[str]) -> ExtractionResult:
        lines = self.newlines + (1 if self.chars and self.last_char != "\n" else 0)
        return ExtractionResult(chars=self.chars, lines=lines, preview="".join(self._preview), notes=notes)


def extract_text(source: Path, dest: Path, name: str, progress: Progress | None = None) -> ExtractionResult:
    """Extract the text of `source` (uploaded as `name`) into `dest`, UTF-8.

    Raises ExtractionError for empty, binary, encrypted, corrupt or dangerous files, and when no text
    comes out. `dest` may be left partly written on error; the caller owns its removal.
    """
    report: Progress = progress or (lambda fraction: None)
    size = source.stat().st_size
    if size == 0:
        raise ExtractionError("The file is empty.")
    kind = format_for(name)
    sink = TextSink(dest)
    notes: list[str] = []
    try:
        if kind == "pdf":
            _extract_pdf(source, sink, notes, report)
        elif kind == "docx":
            _extract_docx(source, sink, notes, report)
        else:
            pieces = _decoded_pieces(source, size, notes, report)
            if kind == "html":
                _html_to_text(pieces, sink)
            else:
                for piece in pieces:
                    sink.write(piece)
    finally:
        sink.close()
    result = sink.result(notes)
    if not result.chars or not result.preview.strip() and _only_whitespace(dest):
        if kind == "pdf":
            raise ExtractionError(
                "The PDF contains no extractable text; it may be scanned images (OCR is not supported)."
            )
        raise ExtractionError("No text was found in the file.")
    report(1.0)
    return result


def _only_whitespace(path: Path) -> bool:
    with path.open(encoding="utf-8") as f:
        while chunk := f.read(READ_BYTES):
            if chunk.strip():
                return False
    return True


# --- text: decoding --------------------------------------------------------------------------------

_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
]
_ALLOWED_CONTROLS = {0x08, 0x09, 0x0A, 0x0C, 0x0D, 0x1B}
_replaced = threading.local()


def _count_and_replace(error: UnicodeDecodeError) -> tuple[str, int]:
    _replaced.count = getattr(_replaced, "count", 0) + (error.end - error.start)
    return "\ufffd", error.end


codecs.register_error("rlmweb-count-replace", _count_and_replace)  # type: ignore[arg-type]  # decoding only


def looks_binary(sample: bytes) -> bool:
    """NUL bytes, or many control characters, in the first bytes of a file that has no Unicode BOM."""
    if not sample:
        return False
    if b"\x00" in sample:
        return True
    controls = sum(1 for b in sample if b < 0x20 and b not in _ALLOWED_CONTROLS)
    return controls / len(sample) > CONTROL_RATIO_LIMIT


def _read_sample(source: Path, size: int) -> bytes:
    with source.open("rb") as f:
        return f.read(min(size, DETECT_BYTES))


def _decoded_pieces(source: Path, size: int, notes: list[str], report: Progress) -> Iterator[str]:
    """Decode the file in pieces: by its BOM, else as UTF-8, else as the detected encoding.

    UTF-8 is tried first and strictly; if an invalid byte turns up (even deep in the file) decoding
    starts again with an encoding detected on the beginning of the file plus the bytes around the
    failure, and the note says so. Bytes the chosen encoding cannot decode become U+FFFD, counted.
    """
    sample = _read_sample(source, size)
    bom_encoding = next((enc for bom, enc in _BOMS if sample.startswith(bom)), None)
    if bom_encoding:
        label = {"utf-8-sig": "UTF-8", "utf-16": "UTF-16", "utf-32": "UTF-32"}[bom_encoding]
        if bom_encoding != "utf-8-sig":
            notes.append(f"decoded as {label} (byte-order mark)")
        else:
            notes.append("UTF-8 byte-order mark removed")
        yield from _decode_with(source, size, bom_encoding, notes, report)
        return
    if looks_binary(sample[:SNIFF_BYTES]):
        raise ExtractionError(
            "This looks like a binary file (it contains NUL or control bytes), not text. "
            "Upload text, Markdown, CSV, JSON, HTML, PDF or DOCX."
        )
    failed_at = _first_utf8_error(source)
    if failed_at is None:
        yield from _decode_with(source, size, "utf-8", notes, report, strict=True)
        return
    with source.open("rb") as f:
        f.seek(max(0, failed_at - 32 * 1024))
        around = f.read(64 * 1024)
    encoding: str | None
    if _utf8_so_far(sample[: min(failed_at, DETECT_BYTES)]):
        encoding = "utf-8"
        notes.append(f"not valid UTF-8 at byte {failed_at}; decoded as UTF-8 with invalid bytes replaced")
    else:
        encoding = _detect(sample + b"\n" + around if failed_at > DETECT_BYTES else sample)
        if encoding is None:
            encoding = "cp1252"
            notes.append("no encoding could be detected; decoded as windows-1252 (fallback)")
        elif codecs.lookup(encoding).name == "utf-8":
            notes.append(f"not valid UTF-8 at byte {failed_at}; decoded as UTF-8 with invalid bytes replaced")
        else:
            notes.append(f"decoded as {_label(encoding)} (detected)")
    yield from _decode_with(source, size, encoding, notes, report)


def _label(encoding: str) -> str:
    name = codecs.lookup(encoding).name
    match = re.fullmatch(r"cp(125\d)", name)
    return f"windows-{match.group(1)}" if match else name


def _first_utf8_error(source: Path) -> int | None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    position = 0
    with source.open("rb") as f:
        while True:
            chunk = f.read(READ_BYTES)
            final = not chunk
            try:
                decoder.decode(chunk, final)
            except UnicodeDecodeError as exc:
                return position + max(0, exc.start - 4)  # near enough: it only centres the detection sample
            position += len(chunk)
            if final:
                return None


# charset-normalizer's first guess between close single-byte code pages is often an exotic one
# (mac_latin2 for French windows-1252 text); the common Western code pages win when nearly as good.
_PREFERRED_ENCODINGS = ("cp1252", "latin_1", "iso8859_15")
_PREFERENCE_MARGIN = 0.05


def _detect(data: bytes) -> str | None:
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        return None
    best = matches[0]
    for match in matches:
        if match.encoding in _PREFERRED_ENCODINGS and match.chaos <= best.chaos + _PREFERENCE_MARGIN:
            return match.encoding
    return best.encoding


def _utf8_so_far(prefix: bytes) -> bool:
    """Non-ASCII text that is valid UTF-8 up to the first bad byte: UTF-8 with a few broken bytes."""
    if prefix.isascii():
        return False
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(prefix) - 3  # only a sequence cut by the end of the prefix
    return True


def _decode_with(
    source: Path, size: int, encoding: str, notes: list[str], report: Progress, strict: bool = False
) -> Iterator[str]:
    _replaced.count = 0
    raw = source.open("rb")
    errors = "strict" if strict else "rlmweb-count-replace"
    # newline=None turns CRLF and CR into LF, so line counts mean the same for every origin.
    text = io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline=None)
    try:
        while piece := text.read(READ_BYTES):
            yield piece
            report(min(raw.tell() / size, 0.99))
    finally:
        text.close()
    if _replaced.count:
        notes.append(f"{_replaced.count} undecodable byte(s) replaced with \N{REPLACEMENT CHARACTER}")


# --- HTML -------------------------------------------------------------------------------------------

_BLOCK_TAGS = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "fieldset", "figcaption",
    "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav",
    "ol", "p", "pre", "section", "table", "tr", "ul", "title", "caption", "summary", "details",
}
_PARAGRAPH_TAGS = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "table", "pre", "title", "blockquote"}
_SKIP_TAGS = {"script", "style", "noscript", "template"}
# Separators waiting to be written before the next text, strongest wins.
_SEPARATOR_RANK = {"": 0, " ": 1, "\t": 2, "\n": 3, "\n\n": 4}


class _HtmlText(html.parser.HTMLParser):
    """Text content of an HTML document: scripts and styles dropped, block elements on their own lines."""

    def __init__(self, sink: TextSink) -> None:
        super().__init__(convert_charrefs=True)
        self.sink = sink
        self.skip_depth = 0
        self.separator = ""

    def handle_starttag(self, tag: str, attrs) -> None:
        if tag in _SKIP_TAGS:
            self.skip_depth += 1
        self._separate_for(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS and self.skip_depth:
            self.skip_depth -= 1
        self._separate_for(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        words = data.split()
        if data[:1].isspace():
            self._separate(" ")
        if words:
            if self.sink.chars:
                self.sink.write(self.separator)
            self.separator = ""
            self.sink.write(" ".join(words))
        if data[-1:].isspace():
            self._separate(" ")

    def _separate_for(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self._separate("\n\n" if tag in _PARAGRAPH_TAGS else "\n")
        elif tag in {"td", "th"}:
            self._separate("\t")

    def _separate(self, separator: str) -> None:
        if _SEPARATOR_RANK[separator] > _SEPARATOR_RANK[self.separator]:
            self.separator = separator


def _html_to_text(pieces: Iterable[str], sink: TextSink) -> None:
    parser = _HtmlText(sink)
    for piece in pieces:
        parser.feed(piece)
    parser.close()
    if sink.chars:
        sink.write("\n")


# --- PDF --------------------------------------------------------------------------------------------


def _extract_pdf(source: Path, sink: TextSink, notes: list[str], report: Progress) -> None:
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PdfReadError

    try:
        reader = PdfReader(source)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError):
                raise ExtractionError(
                    "The PDF is encrypted with a method this server cannot open (AES needs the 'cryptography' "
                    "package); remove the encryption and upload it again."
                ) from None
            if not opened:
                raise ExtractionError(
                    "The PDF is encrypted (password-protected); remove the password and upload it again."
                )
            notes.append("the PDF was encrypted without a user password; opened with the empty password")
        pages = len(reader.pages)
    except ExtractionError:
        raise
    except FileNotDecryptedError:
        raise ExtractionError(
            "The PDF is encrypted (password-protected); remove the password and upload it again."
        ) from None
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ExtractionError(f"The PDF could not be read; it looks corrupt ({_short(exc)}).") from None
    if pages == 0:
        raise ExtractionError("The PDF has no pages.")
    unreadable = []
    for number in range(pages):
        try:
            text = reader.pages[number].extract_text() or ""
        except MemoryError:  # the process is past its memory limit: the whole extraction fails
            raise
        except Exception:  # one damaged page must not cost the others; it is reported in the note
            unreadable.append(number + 1)
            text = ""
        if number:
            sink.write("\n\n")
        sink.write(text.replace("\r\n", "\n").replace("\r", "\n"))
        report((number + 1) / pages)
    if unreadable and len(unreadable) == pages:
        raise ExtractionError("The PDF could not be read; none of its pages gave text (it looks corrupt).")
    notes.append(f"{pages} page(s)")
    if unreadable:
        notes.append(f"page(s) {', '.join(map(str, unreadable[:20]))} could not be read and were skipped")


def _short(exc: Exception) -> str:
    message = str(exc) or type(exc).__name__
    return message if len(message) < 160 else message[:157] + "…"


# --- DOCX -------------------------------------------------------------------------------------------


def _ole_document_problem(source: Path) -> str:
    """Why an OLE compound file given as .docx cannot be read: Word stores a password-protected
    DOCX as an OLE file holding an EncryptedPackage stream; other OLE files are old .doc files."""
    try:
        with olefile.OleFileIO(str(source)) as ole:
            encrypted = ole.exists("EncryptedPackage") or ole.exists("EncryptionInfo")
    except OSError:
        return "The DOCX file is corrupt: it is neither a zip archive nor a readable Office file."
    if encrypted:
        return "The DOCX is encrypted (password-protected); remove the password in Word and upload it again."
    return "This is an old-format Word document (.doc), not .docx; save it as .docx in Word and upload it again."


def check_docx_archive(source: Path) -> None:
    """Refuse a DOCX whose zip is corrupt, not a Word document, or an archive bomb.

    The declared uncompressed sizes are what zipfile will produce at most (it stops at the declared
    size and checks the CRC), so checking them bounds what the parser can inflate. Every entry past
    DOCX_RATIO_SLACK is held to DOCX_MAX_ENTRY_RATIO whatever the total: a 50 KB file of a million
    empty paragraphs expands only to 9 MB, but at 700×, and each paragraph costs the parser memory.
    """
    if olefile.isOleFile(str(source)):
        raise ExtractionError(_ole_document_problem(source))
    compressed = source.stat().st_size
    try:
        with zipfile.ZipFile(source) as archive:
            entries = archive.infolist()
            if len(entries) > DOCX_MAX_ENTRIES:
                raise ExtractionError(
                    f"The DOCX archive has {len(entries)} entries (more than {DOCX_MAX_ENTRIES}); "
                    "it looks like an archive bomb and was not opened."
                )
            total = sum(e.file_size for e in entries)
            too_dense = total > DOCX_RATIO_APPLIES_ABOVE and total > DOCX_MAX_RATIO * compressed
            if total > DOCX_MAX_UNCOMPRESSED or too_dense:
                raise ExtractionError(
                    f"The DOCX would expand to {total:,} bytes from {compressed:,} "
                    f"(limit {DOCX_MAX_RATIO}× its size above {DOCX_RATIO_APPLIES_ABOVE // 2**20} MiB, "
                    f"and {DOCX_MAX_UNCOMPRESSED // 2**20} MiB in all); "
                    "it looks like an archive bomb and was not opened."
                )
            for entry in entries:
                _check_docx_entry(entry)
            names = {e.filename for e in entries}
            if "word/document.xml" not in names:
                raise ExtractionError("The file is a zip archive but not a Word document (no word/document.xml).")
    except zipfile.BadZipFile:
        raise ExtractionError("The DOCX file is corrupt: it is not a valid zip archive.") from None


def _check_docx_entry(entry: zipfile.ZipInfo) -> None:
    too_big = entry.file_size > DOCX_MAX_ENTRY_BYTES
    too_dense = entry.file_size > DOCX_RATIO_SLACK and entry.file_size > DOCX_MAX_ENTRY_RATIO * max(1, entry.compress_size)
    if too_big or too_dense:
        raise ExtractionError(
            f"The DOCX part {entry.filename[:100]} would expand to {entry.file_size:,} bytes from "
            f"{entry.compress_size:,} (limit {DOCX_MAX_ENTRY_RATIO}× above {DOCX_RATIO_SLACK // 2**20} MiB, "
            f"and {DOCX_MAX_ENTRY_BYTES // 2**20} MiB per part); it looks like an archive bomb and was not opened."
        )


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_RUN_TEXT = {_W + "tab": "\t", _W + "ptab": "\t", _W + "cr": "\n", _W + "noBreakHyphen": "-"}


def _run_text(run) -> str:
    """A run's text as python-docx gives it: text, tabs, line breaks (not page or column breaks)."""
    parts = []
    for child in run:
        if child.tag == _W + "t":
            parts.append(child.text or "")
        elif child.tag == _W + "br":
            parts.append("" if child.get(_W + "type") in ("page", "column") else "\n")
        else:
            parts.append(_RUN_TEXT.get(child.tag, ""))
    return "".join(parts)


def _paragraph_text(paragraph) -> str:
    parts = []
    for child in paragraph:
        if child.tag == _W + "r":
            parts.append(_run_text(child))
        elif child.tag == _W + "hyperlink":
            parts.extend(_run_text(run) for run in child.iterchildren(_W + "r"))
    return "".join(parts)


def _row_text(row) -> str:
    cells = ("\n".join(_paragraph_text(p) for p in cell.iterchildren(_W + "p")) for cell in row.iterchildren(_W + "tc"))
    return "\t".join(cells)


def _forget(element) -> None:
    """Drop a handled element and its earlier siblings, so the parsed tree stays small."""
    element.clear()
    while element.getprevious() is not None:
        del element.getparent()[0]


def _extract_docx(source: Path, sink: TextSink, notes: list[str], report: Progress) -> None:
    """The body's paragraphs and table rows, in order, streamed: the tree never holds more than the
    element being read, so a million paragraphs cost no more memory than one."""
    from lxml import etree

    check_docx_archive(source)
    paragraphs = tables = 0
    parser_options = {"resolve_entities": False, "no_network": True, "load_dtd": False, "huge_tree": False}
    try:
        with zipfile.ZipFile(source) as archive:
            if "[Content_Types].xml" not in archive.namelist():
                raise ExtractionError("The DOCX file is corrupt and could not be read (no [Content_Types].xml).")
            etree.fromstring(archive.read("[Content_Types].xml"), etree.XMLParser(**parser_options))
            size = max(1, archive.getinfo("word/document.xml").file_size)
            with archive.open("word/document.xml") as xml:
                depth = 0
                for event, element in etree.iterparse(xml, events=("start", "end"), **parser_options):
                    if event == "start":
                        depth += 1
                        continue
                    # depth 1 is w:document, 2 w:body, 3 a body paragraph or table, 4 a table's row
                    if depth == 3 and element.tag == _W + "p":
                        sink.write(_paragraph_text(element) + "\n")
                        paragraphs += 1
                        _forget(element)
                    elif depth == 4 and element.tag == _W + "tr" and element.getparent().tag == _W + "tbl":
                        sink.write(_row_text(element) + "\n")
                        _forget(element)
                    elif depth == 3:
                        tables += element.tag == _W + "tbl"
                        _forget(element)
                    depth -= 1
                    if (paragraphs + tables) % 500 == 0:
                        report(min(xml.tell() / size, 0.99))
    except ExtractionError:
        raise
    except (etree.XMLSyntaxError, zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError, zlib.error) as exc:
        raise ExtractionError(f"The DOCX file is corrupt and could not be read ({_short(exc)}).") from None
    notes.append(f"{paragraphs} paragraph(s), {tables} table(s)")
