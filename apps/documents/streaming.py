"""Text extraction while the upload arrives: plain-text uploads are ready when the last byte is in.

A text upload (any format but PDF, DOCX and HTML) is decoded chunk by chunk as its bytes are
written to disk, by an incremental decoder wrapped in the same universal-newline translation
`extraction.extract_text` uses, and its UTF-8 text, character and line counts and preview are
kept as it goes. When the upload completes the document is created `ready`, with no second pass
over the file and no extraction task.

The result is byte-identical to `extract_text` because the stream only handles the cases whose
decoding does not depend on the rest of the file:

- a Unicode byte-order mark (UTF-8, UTF-16, UTF-32): that encoding, undecodable bytes replaced and
  counted, the same notes;
- no byte-order mark, not binary by the same sniff of the first 64 KiB, and valid UTF-8 to the end:
  strict UTF-8.

Anything else gives up (`phase = "off"`) and the upload takes the existing path: the bounded child
process extracts it after completion, with its encoding detection, binary refusal and messages.
That covers invalid UTF-8 anywhere (the encoding is then detected on the beginning of the file plus
the bytes around the first bad one), binary files, and files with no text but whitespace.

A chunked upload spans many requests, possibly served by different processes, so the stream's
state is a small JSON file beside the upload's bytes (`<id>.state.part`; its text is
`<id>.text.part`), saved after every chunk under the upload's lock. The state records how many
bytes of the upload were decoded and how many bytes of text were written: a request that died
mid-chunk leaves more on disk than the state says, and the next one truncates the text and
decodes the missing bytes again from the upload file (or starts over, if the upload file was
truncated below what was decoded).

Limits: decoding is linear in the bytes received and holds one piece (≤ 1 MiB of input) at a time,
so it needs neither the extraction child's time nor its memory limit; the upload's size limit and
the team's storage quota are checked exactly as before.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .extraction import (
    _BOMS,
    PREVIEW_CHARS,
    READ_BYTES,
    SNIFF_BYTES,
    ExtractionResult,
    format_for,
    looks_binary,
)

# Formats whose text is not the decoded bytes (or whose bytes are not text): extracted after upload.
NOT_STREAMED = {"pdf", "docx", "html"}
STATE_VERSION = 1

# The notes extraction writes for a byte-order mark (tests compare the two).
_BOM_NOTES = {
    "utf-8-sig": "UTF-8 byte-order mark removed",
    "utf-16": "decoded as UTF-16 (byte-order mark)",
    "utf-32": "decoded as UTF-32 (byte-order mark)",
}
_ERRORS = "rlmweb-stream-count-replace"
_counter = threading.local()


def _count_and_replace(error: UnicodeError) -> tuple[str | bytes, int]:
    """What extraction's "rlmweb-count-replace" does, counted on its own: one decode call happens in
    one thread, so the counter's change across a call is that call's replacements."""
    if not isinstance(error, UnicodeDecodeError):  # registered for decoding only
        raise error
    _counter.count = getattr(_counter, "count", 0) + (error.end - error.start)
    return "\ufffd", error.end


codecs.register_error(_ERRORS, _count_and_replace)


def streams(name: str) -> bool:
    """Whether an upload named `name` is decoded while it arrives (all but PDF, DOCX and HTML)."""
    return format_for(name) not in NOT_STREAMED


def text_path_for(upload: Path) -> Path:
    return upload.with_name(upload.name.removesuffix(".part") + ".text.part")


def state_path_for(upload: Path) -> Path:
    return upload.with_name(upload.name.removesuffix(".part") + ".state.part")


@dataclass
class StreamedText:
    """The finished text of an upload, waiting in the uploads folder to be adopted by its document."""

    path: Path
    result: ExtractionResult

    def place(self, dest: Path) -> dict:
        """Move the text to `dest` (the document's text file) and return the Document fields of a
        ready document (its status aside), as `document_extract` would have set them."""
        shutil.move(self.path, dest)
        from django.conf import settings

        return {
            "progress": 1.0, "error": "", "extraction_note": self.result.note,
            "text_file": str(dest.relative_to(settings.MEDIA_ROOT)), "chars": self.result.chars,
            "lines": self.result.lines, "tokens_estimate": self.result.tokens_estimate,
            "preview": self.result.preview,
        }

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def discard(streamed: StreamedText | None) -> None:
    if streamed is not None:
        streamed.discard()


class TextStream:
    """Decodes one upload's bytes as they arrive (see the module's docstring).

    `feed` every byte of the upload in order, then `finish`. With `persist`, `save` writes the state
    beside the upload and `TextStream.resume` reads it back in the next request.
    """

    def __init__(self, upload: Path, *, persist: bool = False) -> None:
        self.upload = upload
        self.persist = persist
        self.text_path = text_path_for(upload)
        self.state_path = state_path_for(upload)
        self.phase = "sniff"  # sniff (first bytes buffered) → decode → done, or off (fall back)
        self.encoding = ""
        self.strict = True
        self.offset = 0  # bytes of the upload consumed (buffered while sniffing, or decoded)
        self.text_bytes = 0
        self.chars = 0
        self.newlines = 0
        self.last_char = ""
        self.preview = ""
        self.replaced = 0
        self.notes: list[str] = []
        self._sniffed = bytearray()
        self._decoder: io.IncrementalNewlineDecoder | None = None
        self._out: BinaryIO | None = None

    # --- across requests --------------------------------------------------------------------------

    @classmethod
    def resume(cls, upload: Path, received: int) -> TextStream:
        """The stream of a chunked upload whose file holds `received` bytes, caught up to them."""
        stream = cls(upload, persist=True)
        try:
            state = json.loads(stream.state_path.read_text())
        except (FileNotFoundError, ValueError):
            state = None
        if state and state.get("version") == STATE_VERSION:
            stream._load(state)
        if stream.phase == "off":
            return stream
        if stream.offset > received or stream._text_on_disk() < stream.text_bytes:
            stream._restart()
        elif stream._text_on_disk() > stream.text_bytes:
            os.truncate(stream.text_path, stream.text_bytes)
        if stream.offset < received:
            stream._catch_up(received)
        return stream

    def _text_on_disk(self) -> int:
        try:
            return self.text_path.stat().st_size
        except FileNotFoundError:
            return 0

    def _restart(self) -> None:
        self.__init__(self.upload, persist=self.persist)  # type: ignore[misc]  # a fresh state, same object
        self.text_path.unlink(missing_ok=True)

    def _catch_up(self, received: int) -> None:
        """Decode the upload's bytes from `offset` (sniffing: from 0) to `received`, from its file."""
        start = 0 if self.phase == "sniff" else self.offset
        if self.phase == "sniff":
            self._sniffed.clear()
            self.offset = 0
        with self.upload.open("rb") as f:
            f.seek(start)
            while self.phase != "off" and (remaining := received - f.tell()) > 0:
                piece = f.read(min(READ_BYTES, remaining))
                if not piece:
                    break
                self.feed(piece)

    def _load(self, state: dict) -> None:
        self.phase, self.encoding, self.strict = state["phase"], state["encoding"], state["strict"]
        self.offset, self.text_bytes = state["offset"], state["text_bytes"]
        self.chars, self.newlines, self.last_char = state["chars"], state["newlines"], state["last_char"]
        self.preview, self.replaced, self.notes = state["preview"], state["replaced"], state["notes"]
        if self.phase == "sniff":
            self.offset = 0  # the sniffed bytes are not kept in the state: read again from the upload
        elif self.phase == "decode":
            pending, flag = state["decoder"]
            self._decoder = self._new_decoder()
            self._decoder.setstate((bytes.fromhex(pending), flag))

    def save(self) -> None:
        """Write the state beside the upload (atomically); the text written so far is flushed first."""
        if not self.persist:
            return
        if self._out is not None:
            self._out.flush()
        state = {
            "version": STATE_VERSION, "phase": self.phase, "encoding": self.encoding, "strict": self.strict,
            "offset": self.offset, "text_bytes": self.text_bytes, "chars": self.chars, "newlines": self.newlines,
            "last_char": self.last_char, "preview": self.preview, "replaced": self.replaced, "notes": self.notes,
        }
        if self._decoder is not None:
            pending, flag = self._decoder.getstate()
            state["decoder"] = [pending.hex(), flag]
        temporary = self.state_path.with_name(self.state_path.name + ".tmp")
        temporary.write_text(json.dumps(state))
        os.replace(temporary, self.state_path)
        self.close()

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None

    def remove(self) -> None:
        """Delete the stream's text and state (the upload was cancelled, or failed)."""
        self.close()
        remove_files(self.upload)

    # --- decoding ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """The next bytes of the upload."""
        if self.phase == "off" or not data:
            return
        if self.phase == "sniff":
            self._sniffed += data
            self.offset += len(data)
            if len(self._sniffed) >= SNIFF_BYTES:
                self._decide()
            return
        self.offset += len(data)
        self._decode(data)

    def finish(self) -> StreamedText | None:
        """The complete text, or None when the upload must be extracted the usual way."""
        if self.phase == "sniff":
            self._decide()
        if self.phase == "decode":
            self._decode(b"", final=True)
        self.close()
        self.state_path.unlink(missing_ok=True)
        if self.phase == "off" or not self.chars or not self.preview.strip() and self._only_whitespace():
            self._give_up()
            return None
        self.phase = "done"
        notes = list(self.notes)
        if self.replaced:
            notes.append(f"{self.replaced} undecodable byte(s) replaced with \N{REPLACEMENT CHARACTER}")
        lines = self.newlines + (1 if self.chars and self.last_char != "\n" else 0)
        result = ExtractionResult(chars=self.chars, lines=lines, preview=self.preview, notes=notes)
        return StreamedText(self.text_path, result)

    def _new_decoder(self) -> io.IncrementalNewlineDecoder:
        errors = "strict" if self.strict else _ERRORS
        # translate=True: CRLF and CR become LF, as TextIOWrapper(newline=None) does in extraction.
        return io.IncrementalNewlineDecoder(codecs.getincrementaldecoder(self.encoding)(errors), translate=True)

    def _decide(self) -> None:
        """Choose the decoding from the first bytes, as extraction does, or give up."""
        sample = bytes(self._sniffed)
        self._sniffed = bytearray()
        bom = next((encoding for mark, encoding in _BOMS if sample.startswith(mark)), None)
        if bom is not None:
            self.encoding, self.strict = bom, False
            self.notes.append(_BOM_NOTES[bom])
        elif looks_binary(sample[:SNIFF_BYTES]):
            self._give_up()
            return
        else:
            self.encoding, self.strict = "utf-8", True
        self.phase = "decode"
        self._decoder = self._new_decoder()
        self._decode(sample)

    def _decode(self, data: bytes, final: bool = False) -> None:
        assert self._decoder is not None
        before = getattr(_counter, "count", 0)
        # Strict UTF-8 with no CR in sight: the text's UTF-8 is the input itself (less the bytes of
        # a character cut by a piece's end, held by the decoder), so it is written without encoding.
        verbatim = self.encoding == "utf-8" and self.strict and b"\r" not in data
        if verbatim:
            held, flags = self._decoder.getstate()
            verbatim = not flags & 1  # no CR pending from the previous piece
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError:  # invalid UTF-8: the encoding must be detected on the whole file
            self._give_up()
            return
        self.replaced += getattr(_counter, "count", 0) - before
        if not text:
            return
        if self._out is None:
            self._out = self.text_path.open("ab")
        if verbatim:
            still_held = len(self._decoder.getstate()[0])
            self._out.write(held)
            self._out.write(memoryview(data)[: len(data) - still_held])
            self.text_bytes += len(held) + len(data) - still_held
        else:
            encoded = text.encode("utf-8")
            self._out.write(encoded)
            self.text_bytes += len(encoded)
        self.chars += len(text)
        self.newlines += text.count("\n")
        self.last_char = text[-1]
        if len(self.preview) < PREVIEW_CHARS:
            self.preview += text[: PREVIEW_CHARS - len(self.preview)]

    def _give_up(self) -> None:
        self.phase = "off"
        self._decoder = None
        self.close()
        self.text_path.unlink(missing_ok=True)

    def _only_whitespace(self) -> bool:
        with self.text_path.open(encoding="utf-8") as f:
            while chunk := f.read(READ_BYTES):
                if chunk.strip():
                    return False
        return True


def remove_files(upload: Path) -> None:
    """Delete whatever a stream keeps beside the upload file `upload`."""
    for path in (text_path_for(upload), state_path_for(upload)):
        path.unlink(missing_ok=True)
    state_path_for(upload).with_name(state_path_for(upload).name + ".tmp").unlink(missing_ok=True)


# --- hooks for the upload paths ---------------------------------------------------------------------


def enabled() -> bool:
    from django.conf import settings

    return getattr(settings, "STREAM_TEXT_EXTRACTION", True)


def for_chunk(upload: Path, name: str, received: int) -> TextStream | None:
    """The stream to feed a chunk of a chunked upload (already holding `received` bytes), or None."""
    if not enabled() or not streams(name):
        return None
    stream = TextStream.resume(upload, received)
    return None if stream.phase == "off" else stream


def finish_chunked(upload: Path, name: str, received: int) -> StreamedText | None:
    """At completion (under the upload's lock): the streamed text, or None (extract after upload)."""
    if not enabled() or not streams(name):
        remove_files(upload)
        return None
    stream = TextStream.resume(upload, received)
    streamed = stream.finish()
    if streamed is None:
        remove_files(upload)
    return streamed
