"""How numbers read everywhere: money, sizes and counts. static/explorer/format.js is the same in
JavaScript (usd, bytes, num), so a figure looks the same whether the server or a script drew it.

- Money: "$0.0329" under $1 (4 decimals), "$1,234.50" from $1 (2 decimals, thousands separators),
  "<$0.0001" for dust, "$0" for nothing and "unknown" when the price is not known (never $0).
- Sizes: decimal units, 1 KB = 1,000 bytes and 1 MB = 10^6 bytes, one decimal: "12.3 MB".
- Counts: thousands separators: "1,234,567".
"""

SIZE_UNITS = ("KB", "MB", "GB", "TB")


def usd(value: float | None) -> str:
    if value is None:
        return "unknown"
    v = float(value)
    if v == 0:
        return "$0"
    if v < 0.0001:
        return "<$0.0001"
    return f"${v:.4f}" if v < 1 else f"${v:,.2f}"


def size(n: int | None) -> str:
    n = int(n or 0)
    if n < 1000:
        return f"{n:,} bytes"
    value = float(n)
    for unit in SIZE_UNITS:
        value /= 1000
        if value < 999.95 or unit == SIZE_UNITS[-1]:
            return f"{value:,.1f} {unit}"
    raise AssertionError("unreachable")


def thousands(n: int | float | None) -> str:
    return f"{n or 0:,}"
