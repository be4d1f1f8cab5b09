"""Text decoded while the upload arrives (apps.documents.streaming) is byte-identical to extraction.

Every input is run through `extract_text` (what the bounded child does after an upload) and through
the stream fed in many chunkings, in one process and resumed from its state files chunk by chunk
(a chunked upload's requests); the text file, counts, preview and notes must be the same. Inputs
the stream cannot decode alone (invalid UTF-8, other encodings, binary, whitespace only) must fall
back, and the document then ends exactly as extraction makes it.
"""

import codecs
import random
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.documents import streaming
from apps.documents.extraction import SNIFF_BYTES, ExtractionError, extract_text
from apps.documents.models import Document, DocumentStatus
from apps.documents.services import document_extract
from apps.documents.streaming import TextStream

FANCY = "Grüße, 𝄞 naïve ∑ €100 — 日本語テキスト\r\nline two\rline three\n"

STREAMED = {
    "ascii": b"hello world\nsecond line",
    "crlf and lone cr": b"a\r\nb\rc\r\n\r\nd\r",
    "trailing cr": b"one\r",
    "utf-8 multibyte": FANCY.encode() * 50,
    "utf-8 bom": codecs.BOM_UTF8 + FANCY.encode(),
    "utf-8 bom with invalid bytes": codecs.BOM_UTF8 + b"ok \xff\xfe bad \xc3 end\r\n",
    "utf-16 le bom": FANCY.encode("utf-16"),  # Python writes the native (little-endian) mark
    "utf-16 be bom": codecs.BOM_UTF16_BE + FANCY.encode("utf-16-be"),
    "utf-16 odd trailing byte": FANCY.encode("utf-16") + b"x",
    "utf-16 lone surrogate": codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8" + "cd".encode("utf-16-le"),
    "utf-32 bom": FANCY.encode("utf-32"),
    "bom only utf-16 then text": codecs.BOM_UTF16_LE + b"h\x00i\x00",
    "multibyte across the sniff boundary": b"a" * (SNIFF_BYTES - 2) + "€𝄞 done\n".encode() * 3,
    "crlf across the sniff boundary": b"b" * (SNIFF_BYTES - 1) + b"\r\nafter\r\n",
    "a single character": b"x",
    "leading whitespace then text": b"\n\n   \t\n" * 500 + b"text",
}

FALLS_BACK = {
    "invalid utf-8 early": b"caf\xe9 cr\xe8me br\xfbl\xe9e\n" * 20,
    "invalid utf-8 after the sniff": "ä".encode() * SNIFF_BYTES + b"\xff tail\n",
    "latin-1 (detected encoding)": "Déjà vu, garçon, où est la crème brûlée?\n".encode("cp1252") * 200,
    "binary": b"\x00\x01\x02PK\x03\x04" * 100,
    "whitespace only": b" \r\n\t \n" * 100,
    "utf-16 bom, whitespace only": "  \n\n".encode("utf-16"),
}


def extracted(data: bytes, tmp: Path, name: str = "doc.txt"):
    source, dest = tmp / "extract-source", tmp / "extract-dest.txt"
    source.write_bytes(data)
    try:
        result = extract_text(source, dest, name)
    except ExtractionError as exc:
        return ("refused", str(exc))
    return (result.chars, result.lines, result.preview, result.notes, dest.read_bytes())


def chunkings(data: bytes, seed: int) -> list[list[bytes]]:
    rng = random.Random(seed)
    ways = [[data], [data[i : i + 1] for i in range(len(data))] if len(data) < 5000 else [data]]
    for size in (2, 3, 5, 7, 1009, 4096, SNIFF_BYTES - 1, SNIFF_BYTES + 3):
        ways.append([data[i : i + size] for i in range(0, len(data), size)])
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, 12))) if len(data) > 1 else []
    ways.append([data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)])
    return ways


def streamed_in_one_process(chunks: list[bytes], folder: Path):
    upload = folder / "one.part"
    stream = TextStream(upload)
    for chunk in chunks:
        stream.feed(chunk)
    return outcome(stream.finish())


def streamed_across_requests(chunks: list[bytes], folder: Path):
    """Each chunk in its own 'request': the stream is resumed from its state files every time."""
    upload = folder / "many.part"
    upload.write_bytes(b"")
    received = 0
    for chunk in chunks:
        stream = TextStream.resume(upload, received)
        with upload.open("ab") as f:
            f.write(chunk)
        stream.feed(chunk)
        stream.save()
        received += len(chunk)
    streamed = TextStream.resume(upload, received).finish()
    result = outcome(streamed)
    upload.unlink()
    return result


def outcome(streamed):
    if streamed is None:
        return None
    text = streamed.path.read_bytes()
    streamed.discard()
    r = streamed.result
    return (r.chars, r.lines, r.preview, r.notes, text)


@pytest.mark.parametrize("name", sorted(STREAMED))
def test_the_stream_gives_exactly_what_extraction_gives(name, tmp_path):
    data = STREAMED[name]
    expected = extracted(data, tmp_path)
    assert expected[0] != "refused", expected
    for i, chunks in enumerate(chunkings(data, seed=len(name))):
        assert streamed_in_one_process(chunks, tmp_path) == expected, (name, i)
        if len(chunks) <= 200:  # a state file written and read per chunk: kept to a few hundred
            assert streamed_across_requests(chunks, tmp_path) == expected, (name, i)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["extract-dest.txt", "extract-source"]  # nothing left


@pytest.mark.parametrize("name", sorted(FALLS_BACK))
def test_what_the_stream_cannot_decode_alone_falls_back_and_leaves_nothing(name, tmp_path):
    data = FALLS_BACK[name]
    for chunks in chunkings(data, seed=1):
        assert streamed_in_one_process(chunks, tmp_path) is None
        if len(chunks) <= 200:
            assert streamed_across_requests(chunks, tmp_path) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_random_mixtures_of_tricky_pieces_match_extraction(tmp_path):
    pieces = ["a", "\r", "\n", "\r\n", "é", "€", "𝄞", "日本", " ", "\t", "\ufeff", "z" * 50]
    rng = random.Random(18)
    for round_ in range(60):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 400)))
        encoding = rng.choice(["utf-8", "utf-8-sig", "utf-16", "utf-32", "utf-16-be-bom"])
        if encoding == "utf-16-be-bom":
            data = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
        else:
            data = text.encode(encoding)
        if rng.random() < 0.3 and encoding != "utf-8":
            spot = rng.randrange(len(data))
            data = data[:spot] + bytes([rng.randrange(256)]) + data[spot + 1 :]  # maybe invalid now
        expected = extracted(data, tmp_path)
        for chunks in chunkings(data, seed=round_):
            got = streamed_in_one_process(chunks, tmp_path)
            if len(chunks) <= 40:
                assert streamed_across_requests(chunks, tmp_path) == got
            if expected[0] == "refused" or got is None:
                assert got is None, (round_, data)  # the stream never accepts what extraction refuses
                continue
            assert got == expected, (round_, encoding, data)


def test_a_state_ahead_of_the_upload_file_starts_over_from_the_file(tmp_path):
    """A chunk refused after some of its pieces were decoded truncates the upload file: the stream
    notices it decoded more than the file holds and decodes the file again."""
    upload = tmp_path / "u.part"
    data = FANCY.encode() * 10
    upload.write_bytes(data)
    stream = TextStream.resume(upload, 0)
    stream.feed(data)
    stream.save()
    upload.write_bytes(data[:100])  # truncated back to 100 bytes
    stream = TextStream.resume(upload, 100)
    assert stream.offset == 100
    rest = data[100:]
    with upload.open("ab") as f:
        f.write(rest)
    stream.feed(rest)
    assert outcome(stream.finish()) == extracted(data, tmp_path)


# --- through the upload paths ----------------------------------------------------------------------------



@pytest.fixture
def signed_in(client, user, data_dir):
    cache.clear()
    client.force_login(user)
    return client


def chunked_upload(client, name: str, data: bytes, chunk: int) -> dict:
    upload = client.post("/documents/uploads/", {"name": name, "size": len(data)}, content_type="application/json").json()
    for offset in range(0, len(data), chunk):
        sent = client.put(f"{upload['chunk_url']}?offset={offset}", data[offset : offset + chunk],
                          content_type="application/octet-stream")
        assert sent.status_code == 200, sent.json()
    done = client.post(upload["complete_url"])
    assert done.status_code == 201, done.json()
    return done.json()["document"]


def files_under(data_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(data_dir)) for d in ("uploads", "media") for p in (data_dir / d).rglob("*")
                  if p.is_file())


@pytest.mark.django_db
def test_a_chunked_text_upload_is_ready_on_completion_with_extractions_text(
    signed_in, data_dir, tmp_path_factory, django_capture_on_commit_callbacks
):
    data = (FANCY.encode() * 3000)[:-1] + codecs.BOM_UTF8  # multibyte characters cut by every chunk boundary
    with django_capture_on_commit_callbacks() as callbacks:
        document = chunked_upload(signed_in, "notes.md", data, chunk=100_003)
    assert callbacks == []  # no extraction task
    assert document["status"] == "ready" and document["progress"] == 1.0
    row = Document.objects.get(pk=document["id"])
    chars, lines, preview, notes, text = extracted(data, tmp_path_factory.mktemp("x"))
    assert (row.chars, row.lines, row.preview, row.extraction_note, row.text_path.read_bytes()) == (
        chars, lines, preview, "; ".join(notes), text)
    assert row.tokens_estimate == (chars + 3) // 4 and row.original_path.read_bytes() == data
    assert files_under(data_dir) == sorted([f"media/{row.original_file}", f"media/{row.text_file}"])
    assert document_extract(document["id"]) == "ready"  # a stray task changes nothing
    assert signed_in.get(f"/documents/{row.pk}/text").getvalue() == text


@pytest.mark.django_db
def test_invalid_utf8_falls_back_to_extraction_after_upload_with_the_same_result(
    signed_in, data_dir, tmp_path_factory, django_capture_on_commit_callbacks
):
    data = "Grüße aus Köln\n".encode() * 5000 + b"\xe9t\xe9\n" + b"more\n" * 10  # UTF-8 with broken bytes
    with django_capture_on_commit_callbacks() as callbacks:
        document = chunked_upload(signed_in, "mixed.txt", data, chunk=20_000)
    assert document["status"] == "extracting" and len(callbacks) == 1
    assert files_under(data_dir) == [f"media/{Document.objects.get(pk=document['id']).original_file}"]
    assert document_extract(document["id"]) == "ready"
    row = Document.objects.get(pk=document["id"])
    chars, lines, preview, notes, text = extracted(data, tmp_path_factory.mktemp("x"))
    assert "not valid UTF-8" in notes[0]
    assert (row.chars, row.lines, row.preview, row.extraction_note, row.text_path.read_bytes()) == (
        chars, lines, preview, "; ".join(notes), text)


@pytest.mark.django_db
def test_a_chunk_broken_mid_way_resumes_and_still_streams(signed_in, data_dir, tmp_path_factory):
    from apps.documents import services
    from apps.documents.models import UploadSession
    from tests.web.test_documents_upload import BrokenStream

    data = FANCY.encode() * 60_000  # ~3.5 MB
    upload = signed_in.post("/documents/uploads/", {"name": "r.txt", "size": len(data)},
                            content_type="application/json").json()
    session = UploadSession.objects.get(pk=upload["id"])
    with pytest.raises(ConnectionResetError):
        services.upload_append(session, 0, BrokenStream(data[: 3 * 1024 * 1024], 1536 * 1024 + 5), 3 * 1024 * 1024)
    offset = signed_in.get(upload["url"]).json()["offset"]
    assert offset == 1536 * 1024 + 5
    while offset < len(data):
        offset = signed_in.put(f"{upload['chunk_url']}?offset={offset}", data[offset : offset + 1_000_001],
                               content_type="application/octet-stream").json()["offset"]
    document = signed_in.post(upload["complete_url"]).json()["document"]
    assert document["status"] == "ready"
    row = Document.objects.get(pk=document["id"])
    assert row.text_path.read_bytes() == extracted(data, tmp_path_factory.mktemp("x"))[4]


@pytest.mark.django_db
def test_a_cancelled_upload_leaves_no_stream_files(signed_in, data_dir):
    upload = signed_in.post("/documents/uploads/", {"name": "c.txt", "size": 100_000},
                            content_type="application/json").json()
    signed_in.put(f"{upload['chunk_url']}?offset=0", b"a" * 70_000, content_type="application/octet-stream")
    kept = sorted(name.split(".", 1)[1] for name in files_under(data_dir))
    assert kept == ["part", "state.part", "text.part"]
    assert signed_in.delete(upload["url"]).status_code == 200
    assert files_under(data_dir) == []


@pytest.mark.django_db
def test_pdf_and_html_are_not_streamed(signed_in, data_dir, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        document = chunked_upload(signed_in, "page.html", b"<p>Hello <b>there</b></p>", chunk=10)
    assert document["status"] == "extracting" and len(callbacks) == 1
    assert not streaming.streams("a.pdf") and not streaming.streams("a.docx") and streaming.streams("a.csv")


@pytest.mark.django_db
def test_streaming_can_be_switched_off(signed_in, data_dir, settings, django_capture_on_commit_callbacks):
    settings.STREAM_TEXT_EXTRACTION = False
    with django_capture_on_commit_callbacks() as callbacks:
        document = chunked_upload(signed_in, "a.txt", b"plain text\n", chunk=4)
    assert document["status"] == "extracting" and len(callbacks) == 1
    assert files_under(data_dir) == [f"media/{Document.objects.get(pk=document['id']).original_file}"]


@pytest.mark.django_db
def test_a_single_request_upload_streams_too(user, data_dir, tmp_path_factory):
    from django.test import Client

    from apps.accounts.models import ApiToken

    cache.clear()
    api = Client(headers={"Authorization": f"Token {ApiToken.issue(user)[1]}"})
    good = FANCY.encode("utf-16") * 20
    bad = "Déjà vu\n".encode("cp1252") * 30
    response = api.post("/api/documents/", {"file": [SimpleUploadedFile("a.txt", good), SimpleUploadedFile("b.csv", bad)]})
    assert response.status_code == 201, response.json()
    first, second = (r["document"] for r in response.json()["results"])
    assert first["status"] == "ready" and second["status"] == "extracting"
    row = Document.objects.get(pk=first["id"])
    chars, lines, preview, notes, text = extracted(good, tmp_path_factory.mktemp("x"))
    assert (row.chars, row.lines, row.extraction_note, row.text_path.read_bytes()) == (chars, lines, "; ".join(notes), text)
    assert not list((data_dir / "uploads").iterdir())
    assert Document.objects.get(pk=second["id"]).status == DocumentStatus.EXTRACTING
