"""PDF ingest benchmark: extraction speed and peak memory for a 50 MB PDF.

    python benchmarks/bench_pdf.py

Builds a text PDF of about 50 MB (uncompressed content streams, one font, many pages), then runs
rlmweb's extractor (`apps.documents.extraction.extract_text`, page by page) in a fresh process,
against the naive baseline: pypdf's whole-document `"".join(page.extract_text() for page in ...)`
held in memory. Each measurement reports seconds, MB/s of PDF and the process's peak RSS above its
RSS before the work started.

Writes benchmarks/results/pdf.json and prints a markdown table.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET_BYTES = 50 * 1024 * 1024
LINES_PER_PAGE = 60
WORDS = ["river", "stone", "paper", "cloud", "market", "signal", "garden", "winter", "ledger", "clause", "invoice", "harbour", "contract", "tenant", "meridian", "copper", "lantern", "orchard"]

MEASURE = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
source, dest, mode = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
if mode == "rlmweb":
    from apps.documents.extraction import extract_text
else:
    import pypdf
before = rss_mib()
started = time.perf_counter()
if mode == "rlmweb":
    chars = extract_text(source, dest, "big.pdf").chars
else:
    text = "".join(page.extract_text() for page in pypdf.PdfReader(str(source)).pages)
    dest.write_text(text)
    chars = len(text)
seconds = time.perf_counter() - started
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "chars": chars, "rss_before_mib": before, "peak_rss_mib": peak}))
"""


def build_pdf(path: Path, target_bytes: int = TARGET_BYTES) -> int:
    """Write a valid PDF of about `target_bytes` with plain text pages; returns the page count."""
    rng = random.Random(7)
    offsets: list[int] = []
    with path.open("wb") as out:

        def obj(number: int, body: bytes) -> None:
            offsets.append(out.tell())
            out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")

        out.write(b"%PDF-1.4\n")
        # Objects 1 (catalog), 2 (pages) and 3 (font) are written last, once the page count is known.
        number, pages = 4, []
        while out.tell() < target_bytes:
            lines = [" ".join(rng.choice(WORDS) for _ in range(12)) for _ in range(LINES_PER_PAGE)]
            ops = [b"BT /F1 9 Tf 40 800 Td 11 TL"] + [b"(" + line.encode() + b") '" for line in lines] + [b"ET"]
            stream = b"\n".join(ops)
            obj(number, b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
            obj(number + 1, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % number)
            pages.append(number + 1)
            number += 2
        kids = b" ".join(b"%d 0 R" % p for p in pages)
        tail = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
                2: b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % len(pages),
                3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
        body_offsets = offsets[:]
        offsets.clear()
        for n, body in tail.items():
            obj(n, body)
        by_number = dict(zip(range(4, number), body_offsets, strict=True)) | dict(zip(tail, offsets, strict=True))
        xref = out.tell()
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % number)
        for n in range(1, number):
            out.write(b"%010d 00000 n \n" % by_number[n])
        out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (number, xref))
    return len(pages)


def measure(pdf: Path, mode: str, tmp: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", MEASURE, str(REPO), str(pdf), str(tmp / f"{mode}.txt"), mode],
                          check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    size_mb = pdf.stat().st_size / 1e6
    result["mb_per_s"] = round(size_mb / result["seconds"], 1)
    result["peak_above_baseline_mib"] = round(result["peak_rss_mib"] - result["rss_before_mib"], 1)
    result["seconds"] = round(result["seconds"], 2)
    return result


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="rlmweb-bench-pdf-") as tmp_name:
        tmp = Path(tmp_name)
        pdf = tmp / "big.pdf"
        pages = build_pdf(pdf)
        size_mb = round(pdf.stat().st_size / 1e6, 1)
        rows = {"rlmweb (page by page, streamed to disk)": measure(pdf, "rlmweb", tmp),
                "naive (pypdf, whole text in memory)": measure(pdf, "naive", tmp)}
    results = {"pdf_mb": size_mb, "pages": pages, "rows": rows}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pdf.json").write_text(json.dumps(results, indent=2))
    print(f"| PDF extraction, {size_mb} MB, {pages:,} pages | seconds | MB/s | peak RSS above baseline |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['seconds']} | {row['mb_per_s']} | {row['peak_above_baseline_mib']} MiB |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
