"""Text extraction: every format, every bad input, and what a failed extraction leaves behind.

`extract_text` is tested as a plain function; `document_extract` (what the Celery task calls) is
tested for the document row and the files it keeps or deletes.
"""

import io
import zipfile
from pathlib import Path

import docx
import pytest
from django.core.cache import cache
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pypdf import PdfReader, PdfWriter

from apps.documents.extraction import ExtractionError, extract_text, format_for, looks_binary
from apps.documents.models import Document, DocumentStatus
from apps.documents.services import document_create_from_file, document_extract
from tests.helpers import pdf_from_objects

# --- builders of realistic files --------------------------------------------------------------------


def make_pdf(pages: list[str]) -> bytes:
    """A small, valid PDF with one line of Helvetica text per page, written by hand."""
    objects: list[bytes] = []
    page_ids = [3 + 2 * i for i in range(len(pages))]
    font_id = 3 + 2 * len(pages)
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{i} 0 R" for i in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {page_ids[i] + 1} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_from_objects(objects)


def encrypted_pdf(user_password: str, owner_password: str = "owner") -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(make_pdf(["Top secret page"]))))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def make_docx(paragraphs: list[str], table: list[list[str]] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
        document.add_paragraph("After the table")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return out.getvalue()


def extract(tmp_path: Path, name: str, data: bytes):
    source = tmp_path / ("in-" + name)
    source.write_bytes(data)
    dest = tmp_path / "out.txt"
    seen: list[float] = []
    result = extract_text(source, dest, name, seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    return result, dest.read_text(encoding="utf-8")


def refusal(tmp_path: Path, name: str, data: bytes) -> str:
    with pytest.raises(ExtractionError) as caught:
        extract(tmp_path, name, data)
    return str(caught.value)


# --- text ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a.txt", "a.md", "a.csv", "a.json", "a.jsonl", "main.py", "lib.rs", "Makefile", "notes.weird"])
def test_text_formats_and_unknown_text_extensions_are_read_as_text(tmp_path, name):
    result, text = extract(tmp_path, name, "ünïcode line\nsecond line\n".encode())
    assert text == "ünïcode line\nsecond line\n"
    assert (result.chars, result.lines, result.note) == (25, 2, "")


def test_formats_are_labelled():
    labels = {n: format_for(n) for n in ["a.TXT", "b.md", "c.csv", "d.json", "e.jsonl", "f.py", "g.html", "h.pdf", "i.docx", "j.xyz"]}
    assert labels == {"a.TXT": "txt", "b.md": "md", "c.csv": "csv", "d.json": "json", "e.jsonl": "jsonl", "f.py": "code",
                      "g.html": "html", "h.pdf": "pdf", "i.docx": "docx", "j.xyz": "text"}


def test_stats_count_characters_not_bytes_and_a_last_line_without_newline(tmp_path):
    result, _ = extract(tmp_path, "a.txt", "€€€\nlast".encode())
    assert (result.chars, result.lines, result.tokens_estimate) == (8, 2, 2)


def test_windows_line_endings_become_newlines(tmp_path):
    result, text = extract(tmp_path, "a.txt", b"one\r\ntwo\rthree\r\n")
    assert text == "one\ntwo\nthree\n" and result.lines == 3


def test_a_utf8_byte_order_mark_is_removed(tmp_path):
    result, text = extract(tmp_path, "a.csv", b"\xef\xbb\xbfname,value\n")
    assert text == "name,value\n" and result.note == "UTF-8 byte-order mark removed"


def test_utf16_with_a_byte_order_mark_is_decoded_not_called_binary(tmp_path):
    result, text = extract(tmp_path, "a.txt", "Grüße aus UTF-16\n".encode("utf-16"))
    assert text == "Grüße aus UTF-16\n" and result.note == "decoded as UTF-16 (byte-order mark)"


def test_a_legacy_encoding_is_detected_and_reported(tmp_path):
    original = (
        "Le café était très animé ; l’été, les élèves déjeunent à côté du théâtre.\n"
        "Où est la boîte ? Il a reçu « un cadeau » — c’est déjà Noël, dit-il à sa sœur.\n"
        "Les garçons français mangent des crêpes près de la forêt, après l’école.\n"
    ) * 20
    result, text = extract(tmp_path, "fr.txt", original.encode("cp1252"))
    assert text == original
    assert result.note == "decoded as windows-1252 (detected)"


def test_an_invalid_byte_deep_in_a_utf8_file_is_replaced_and_counted(tmp_path):
    data = ("ascii and ünïcode " * 100_000).encode() + b"\xff" + "tail ü\n".encode()
    result, text = extract(tmp_path, "big.txt", data)
    assert text.endswith("\ufffdtail ü\n") and text.count("\ufffd") == 1
    assert "not valid UTF-8 at byte" in result.note and "1 undecodable byte(s) replaced" in result.note


def test_a_binary_file_is_refused_whatever_its_extension(tmp_path):
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4
    for name in ("image.png", "image.txt", "data.bin"):
        assert refusal(tmp_path, name, png).startswith("This looks like a binary file")


def test_control_characters_without_nul_are_binary_too():
    assert looks_binary(bytes([1, 2, 3, 4, 5, 6, 7, 65]) * 100)
    assert not looks_binary(b"plain text\twith tabs\r\n\x1b[1mescapes\x1b[0m\n")


def test_an_empty_file_is_refused(tmp_path):
    assert refusal(tmp_path, "a.txt", b"") == "The file is empty."


def test_a_file_of_whitespace_has_no_text(tmp_path):
    assert refusal(tmp_path, "a.txt", b" \n\n\t \n") == "No text was found in the file."


@hypothesis_settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, alphabet=st.characters(blacklist_categories=("Cs", "Cc"))).filter(str.strip))
def test_any_utf8_text_round_trips(tmp_path_factory, text):
    folder = tmp_path_factory.mktemp("rt")
    result, extracted = extract(folder, "t.txt", text.encode())
    assert extracted == text.replace("\r\n", "\n").replace("\r", "\n")
    assert result.chars == len(extracted)


# --- HTML ----------------------------------------------------------------------------------------------


def test_html_becomes_text_without_scripts_or_styles(tmp_path):
    page = b"""<!doctype html><html><head><title>The Title</title><style>p { color: red }</style>
    <script>var secret = "do not show";</script></head>
    <body><h1>Heading</h1><p>First   paragraph with <b>bold</b> and &amp; entities&nbsp;here.</p>
    <ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr></table>
    <noscript>enable js</noscript></body></html>"""
    result, text = extract(tmp_path, "page.html", page)
    assert "secret" not in text and "color" not in text and "enable js" not in text
    assert text == "The Title\n\nHeading\n\nFirst paragraph with bold and & entities here.\n\none\ntwo\n\na\tb\n"
    assert result.lines == 10


def test_html_with_no_text_is_refused(tmp_path):
    assert refusal(tmp_path, "x.htm", b"<html><script>1</script></html>") == "No text was found in the file."


# --- PDF -----------------------------------------------------------------------------------------------


def test_pdf_text_is_extracted_page_by_page(tmp_path):
    result, text = extract(tmp_path, "report.pdf", make_pdf(["First page text", "Second page text", "Third"]))
    assert text == "First page text\n\nSecond page text\n\nThird"
    assert result.note == "3 page(s)"


def test_an_encrypted_pdf_is_refused_with_a_clear_message(tmp_path):
    message = refusal(tmp_path, "locked.pdf", encrypted_pdf("secret"))
    assert message == "The PDF is encrypted (password-protected); remove the password and upload it again."


def test_a_pdf_with_only_an_owner_password_opens(tmp_path):
    result, text = extract(tmp_path, "owner.pdf", encrypted_pdf(""))
    assert text == "Top secret page" and "opened with the empty password" in result.note


@pytest.mark.parametrize("data", [b"%PDF-1.4\nthis is not really a pdf", make_pdf(["x"])[:200]])
def test_a_corrupt_pdf_is_refused_with_a_clear_message(tmp_path, data):
    assert refusal(tmp_path, "broken.pdf", data).startswith("The PDF could not be read")


def test_a_pdf_without_text_says_it_may_be_scanned(tmp_path):
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    out = io.BytesIO()
    writer.write(out)
    assert "no extractable text; it may be scanned images" in refusal(tmp_path, "scan.pdf", out.getvalue())


# --- DOCX ----------------------------------------------------------------------------------------------


def test_docx_paragraphs_and_tables_are_extracted_in_order(tmp_path):
    data = make_docx(["Introduction", "Body paragraph"], table=[["Name", "Score"], ["Ada", "10"]])
    result, text = extract(tmp_path, "doc.docx", data)
    assert text == "Introduction\nBody paragraph\nName\tScore\nAda\t10\nAfter the table\n"
    assert result.note == "3 paragraph(s), 1 table(s)"


def test_a_docx_archive_bomb_is_refused_before_it_is_opened(tmp_path):
    bomb = zip_bytes({"[Content_Types].xml": b"<x/>", "word/document.xml": b"<w>" + b"A" * 30_000_000 + b"</w>"})
    assert len(bomb) < 100_000
    message = refusal(tmp_path, "bomb.docx", bomb)
    assert message.startswith("The DOCX would expand to 30,000,") and "archive bomb" in message


def test_a_docx_over_the_uncompressed_cap_is_refused(tmp_path, monkeypatch):
    from apps.documents import extraction

    monkeypatch.setattr(extraction, "DOCX_MAX_UNCOMPRESSED", 1000)
    message = refusal(tmp_path, "big.docx", make_docx(["x" * 5000]))
    assert "archive bomb" in message


def test_a_docx_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    from apps.documents import extraction

    monkeypatch.setattr(extraction, "DOCX_MAX_ENTRIES", 50)
    data = zip_bytes({"word/document.xml": b"<w/>", **{f"junk/{i}": b"" for i in range(60)}})
    assert refusal(tmp_path, "many.docx", data).startswith("The DOCX archive has 61 entries")


def test_a_corrupt_docx_is_refused(tmp_path):
    assert refusal(tmp_path, "bad.docx", b"PK\x03\x04 not really a zip") == (
        "The DOCX file is corrupt: it is not a valid zip archive."
    )
    assert "not a Word document" in refusal(tmp_path, "other.docx", zip_bytes({"hello.txt": b"hi"}))
    broken_xml = zip_bytes({"[Content_Types].xml": b"<broken", "word/document.xml": b"<w/>"})
    assert refusal(tmp_path, "xml.docx", broken_xml).startswith("The DOCX file is corrupt and could not be read")



def encrypted_docx(text: str) -> bytes:
    """A DOCX encrypted the way Word does it (ECMA-376 agile encryption, in an OLE compound file)."""
    from msoffcrypto.format.ooxml import OOXMLFile

    encrypted = io.BytesIO()
    OOXMLFile(io.BytesIO(make_docx([text]))).encrypt("s3cret", encrypted)
    return encrypted.getvalue()


def test_an_encrypted_docx_is_refused_as_encrypted(tmp_path):
    assert refusal(tmp_path, "locked.docx", encrypted_docx("Confidential")) == (
        "The DOCX is encrypted (password-protected); remove the password in Word and upload it again."
    )


def test_an_old_word_file_named_docx_is_told_to_be_saved_as_docx(tmp_path):
    # The same OLE compound file with its two encryption streams renamed (same-length names, so
    # the directory stays valid): an OLE file that is not an encrypted DOCX, as a .doc is.
    def utf16(name: str) -> bytes:
        return name.encode("utf-16-le")

    ole = encrypted_docx("Old").replace(utf16("EncryptedPackage"), utf16("WordDocumentData"))
    ole = ole.replace(utf16("EncryptionInfo"), utf16("SummaryStreams"))
    assert refusal(tmp_path, "old.docx", ole) == (
        "This is an old-format Word document (.doc), not .docx; save it as .docx in Word and upload it again."
    )

# --- document_extract: the row and the files ------------------------------------------------------------


@pytest.fixture
def adopt(db, user, team, data_dir):
    """Turn bytes into a Document in `extracting`, as a completed upload does."""
    cache.clear()

    def adopt(name: str, data: bytes) -> Document:
        path = data_dir / "incoming"
        path.write_bytes(data)
        return document_create_from_file(user=user, team=team, name=name, path=path).document

    return adopt


def media_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "media").rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("blob.txt", b"\x00\x01binary\x00", "This looks like a binary file"),
        ("locked.pdf", encrypted_pdf("pw"), "The PDF is encrypted"),
        ("broken.pdf", b"%PDF-1.4 junk", "The PDF could not be read"),
        ("bomb.docx", zip_bytes({"word/document.xml": b"A" * 20_000_000}), "The DOCX would expand"),
        ("bad.docx", b"not a zip at all", "The DOCX file is corrupt"),
        ("blank.txt", b"   \n", "No text was found"),
    ],
)
def test_a_failed_extraction_keeps_the_row_with_its_reason_and_deletes_its_files(adopt, data_dir, name, data, message):
    document = adopt(name, data)
    assert media_files(data_dir) == [document.original_path]
    assert document_extract(str(document.pk)) == DocumentStatus.FAILED
    document.refresh_from_db()
    assert document.status == "failed" and document.error.startswith(message)
    assert (document.original_file, document.text_file, document.chars, document.preview) == ("", "", 0, "")
    assert media_files(data_dir) == []


def test_an_unexpected_error_fails_the_document_without_leaking_details(adopt, data_dir, monkeypatch):
    from apps.documents import services

    def explode(*args, **kwargs):
        raise RuntimeError("internal detail")

    monkeypatch.setattr(services, "extract_bounded", explode)
    document = adopt("a.txt", b"text\n")
    assert document_extract(str(document.pk)) == "failed"
    document.refresh_from_db()
    assert document.error == "Text extraction failed unexpectedly (RuntimeError)."
    assert media_files(data_dir) == []


def test_extraction_is_idempotent(adopt, data_dir):
    document = adopt("a.txt", b"once\n")
    assert document_extract(str(document.pk)) == "ready"
    text_before = Document.objects.get(pk=document.pk).text_path
    mtime = text_before.stat().st_mtime_ns
    assert document_extract(str(document.pk)) == "ready"  # a re-delivered task changes nothing
    assert text_before.stat().st_mtime_ns == mtime
    assert document_extract("00000000-0000-0000-0000-000000000000") == "missing"


def test_every_format_becomes_a_ready_document(adopt, data_dir):
    samples = {
        "a.txt": b"plain\n", "b.md": b"# md\n", "c.csv": b"x,y\n", "d.json": b'{"k": 1}\n', "e.jsonl": b'{"k": 1}\n{"k": 2}\n',
        "f.py": b"print('hi')\n", "g.html": b"<p>hello</p>", "h.pdf": make_pdf(["pdf text"]), "i.docx": make_docx(["docx text"]),
        "j.unknown": b"unknown but text\n",
    }
    for name, data in samples.items():
        document = adopt(name, data)
        assert document_extract(str(document.pk)) == "ready", name
        document.refresh_from_db()
        assert document.chars > 0 and document.text_path.exists() and document.preview, name
    assert not list((data_dir / "media").rglob("*.part"))


# --- DOCX memory bombs under the total-size threshold ------------------------------------------------------


def empty_paragraphs_docx(count: int, tail: bytes = b"") -> bytes:
    """A real DOCX whose body is `count` empty paragraphs: tens of KB that expand 700×."""
    template = zipfile.ZipFile(io.BytesIO(make_docx(["x"])))
    entries = {info.filename: template.read(info.filename) for info in template.infolist()}
    xml = entries["word/document.xml"]
    start, end = xml.index(b"<w:body>") + len(b"<w:body>"), xml.index(b"<w:sectPr")
    entries["word/document.xml"] = xml[:start] + b"<w:p/>" * count + tail + xml[end:]
    return zip_bytes(entries)


def test_a_small_docx_of_a_million_empty_paragraphs_is_refused_as_a_bomb(tmp_path):
    data = empty_paragraphs_docx(1_550_000)
    assert len(data) < 100_000  # expands to 9.3 MB, under the 10 MiB where the total ratio applies
    message = refusal(tmp_path, "empty.docx", data)
    assert message.startswith("The DOCX part word/document.xml would expand to 9,3") and "archive bomb" in message


def test_docx_paragraphs_are_streamed_in_bounded_memory(tmp_path):
    """With the ratio check lifted, 1.55 M paragraphs extract under a 400 MiB address-space cap
    (python-docx's whole tree needed ~470 MiB more than the process already had)."""
    import subprocess
    import sys

    source = tmp_path / "empty.docx"
    source.write_bytes(empty_paragraphs_docx(1_550_000, tail=b"<w:p><w:r><w:t>end</w:t></w:r></w:p>"))
    script = (
        "import resource, sys\n"
        "from pathlib import Path\n"
        "from apps.documents import extraction\n"
        "extraction.DOCX_MAX_ENTRY_RATIO = 10**9\n"
        "resource.setrlimit(resource.RLIMIT_AS, (400 * 2**20, 400 * 2**20))\n"
        "r = extraction.extract_text(Path(sys.argv[1]), Path(sys.argv[2]), 'empty.docx')\n"
        "print(r.lines, r.note)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(source), str(tmp_path / "out.txt")],
                          cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout == "1550001 1550001 paragraph(s), 0 table(s)\n"
