"""onboard's functions for Spark, registered as `onboard_<name>`.

Shipped in every Databricks bundle that `onboard render --target databricks` writes. Each
function computes the same value as the Rust function of the same name in onboard's
`src/udf/` and `src/pseudonymise.rs` (null in, null out; a bad value gives null or
False, never an error). `tests/spark/check_spark_sql.py` runs the bundle's SQL with
these functions on pyspark and compares the rows with the embedded engine's.

The pseudonymisation key is read from the environment (`ONBOARD_PSEUDONYMISATION_KEY`,
which the bundle's job cluster fills from a Databricks secret scope) and never printed.
"""

import datetime as _dt
import hashlib as _hashlib
import hmac as _hmac
import os as _os

MIN_KEY_BYTES = 32
KEY_ENV = "ONBOARD_PSEUDONYMISATION_KEY"


# ---------------------------------------------------------------------------- text


def digits_only(s):
    if s is None:
        return None
    d = "".join(c for c in s if "0" <= c <= "9")
    return d or None


def nhs_number_valid(s):
    if s is None:
        return None
    digits = []
    for c in s:
        if "0" <= c <= "9":
            if len(digits) == 10:
                return False
            digits.append(ord(c) - 48)
        elif c in " -":
            continue
        else:
            return False
    if len(digits) != 10 or all(d == digits[0] for d in digits):
        return False
    total = sum(d * (10 - i) for i, d in enumerate(digits[:9]))
    check = 11 - (total % 11)
    if check == 11:
        check = 0
    elif check == 10:
        return False
    return check == digits[9]


def _ascii_digit(c):
    return "0" <= c <= "9"


def _ascii_alpha(c):
    return ("A" <= c <= "Z") or ("a" <= c <= "z")


def _uk_postcode(s):
    compact = "".join(
        c.upper() if c.isascii() else c for c in s if not c.isspace()
    )
    if not compact.isascii() or len(compact) < 5 or len(compact) > 7:
        return None
    outward, inward = compact[:-3], compact[-3:]
    if not (_ascii_digit(inward[0]) and _ascii_alpha(inward[1]) and _ascii_alpha(inward[2])):
        return None
    if any(c in "CIKMOV" for c in inward[1:]):
        return None
    shape = "".join("9" if _ascii_digit(c) else "A" if _ascii_alpha(c) else "?" for c in outward)
    if shape not in ("A9", "A99", "A9A", "AA9", "AA99", "AA9A"):
        return None
    if outward.startswith("ZZ"):
        return None
    return outward + " " + inward


def uk_postcode(s):
    """The `uk_postcode` transform (Rust `postcode_normalise`)."""
    if s is None:
        return None
    p = _uk_postcode(s)
    if p is not None:
        return p
    t = " ".join(s.split()).upper()
    return t or None


def postcode_valid(s):
    if s is None:
        return None
    return _uk_postcode(s) is not None


def postcode_sector(s):
    if s is None:
        return None
    p = _uk_postcode(s)
    return None if p is None else p[:-2]


def postcode_district(s):
    if s is None:
        return None
    p = _uk_postcode(s)
    return None if p is None else p[:-4]


def _alnum_upper(s):
    return "".join(c.upper() for c in s.strip() if c.isascii() and c.isalnum())


def icd10_normalise(s):
    if s is None:
        return None
    c = _alnum_upper(s)
    while len(c) > 3 and c.endswith("X"):
        c = c[:-1]
    if len(c) < 3 or not _ascii_alpha(c[0]) or not _ascii_digit(c[1]):
        return None
    return c


def opcs4_normalise(s):
    if s is None:
        return None
    c = _alnum_upper(s)
    if len(c) < 3 or not _ascii_alpha(c[0]) or not all(_ascii_digit(x) for x in c[1:3]):
        return None
    return c


def snomed_normalise(s):
    if s is None:
        return None
    t = s.strip()
    if 6 <= len(t.encode()) <= 18 and all(_ascii_digit(c) for c in t) and not t.startswith("0"):
        return t
    return None


def read_code_normalise(s):
    if s is None:
        return None
    t = s.strip()
    if not t or len(t.encode()) > 5 or not all((c.isascii() and c.isalnum()) or c == "." for c in t):
        return None
    return t + "." * (5 - len(t))


_FOLD = {}
for _chars, _to in [
    ("àáâãäåÀÁÂÃÄÅ", "A"),
    ("æÆ", "AE"),
    ("çÇ", "C"),
    ("èéêëÈÉÊË", "E"),
    ("ìíîïÌÍÎÏ", "I"),
    ("ñÑ", "N"),
    ("òóôõöøÒÓÔÕÖØ", "O"),
    ("ùúûüÙÚÛÜ", "U"),
    ("ýÿÝ", "Y"),
    ("ß", "SS"),
    ("\u2019\u2018", "'"),
]:
    for _c in _chars:
        _FOLD[_c] = _to


def _fold(c):
    return _FOLD.get(c, c)


def name_standardise(s):
    if s is None:
        return None
    out = []
    last_space = True
    for ch in s:
        for c in _fold(ch):
            if _ascii_alpha(c):
                out.append(c.upper())
                last_space = False
            elif c in "-'":
                out.append(c)
                last_space = False
            elif (c.isspace() or c in ".,") and not last_space:
                out.append(" ")
                last_space = True
    t = "".join(out).strip()
    return t or None


_SOUNDEX = {}
for _letters, _code in [("BFPV", "1"), ("CGJKQSXZ", "2"), ("DT", "3"), ("L", "4"), ("MN", "5"), ("R", "6"), ("HW", "h")]:
    for _c in _letters:
        _SOUNDEX[_c] = _code


def soundex(s):
    if s is None:
        return None
    letters = [c.upper() for ch in s for c in _fold(ch) if _ascii_alpha(c)]
    if not letters:
        return None
    code = lambda c: _SOUNDEX.get(c, "0")  # noqa: E731
    out = letters[0]
    last = code(letters[0])
    for c in letters[1:]:
        d = code(c)
        if d == "h":
            continue
        if d != "0" and d != last:
            out += d
            if len(out) == 4:
                break
        last = d
    return out.ljust(4, "0")


def jaro_winkler(a, b):
    """strsim 0.11's `jaro_winkler`, over Unicode scalar values."""
    if a is None or b is None:
        return None
    sim = _jaro(a, b)
    if sim > 0.7:
        prefix = 0
        for x, y in zip(a[:4], b):
            if x != y:
                break
            prefix += 1
        return sim + 0.1 * prefix * (1.0 - sim)
    return sim


def _jaro(a, b):
    la, lb = len(a), len(b)
    if la == 0 and lb == 0:
        return 1.0
    if la == 0 or lb == 0:
        return 0.0
    search = max(max(la, lb) // 2 - 1, 0)
    af = [False] * la
    bf = [False] * lb
    matches = 0
    for i, x in enumerate(a):
        lo = i - search if i > search else 0
        hi = min(lb, i + search + 1)
        for j in range(lo, hi):
            if x == b[j] and not bf[j]:
                af[i] = bf[j] = True
                matches += 1
                break
    if matches == 0:
        return 0.0
    transpositions = 0
    bi = iter(j for j in range(lb) if bf[j])
    for i in range(la):
        if af[i]:
            j = next(bi)
            if a[i] != b[j]:
                transpositions += 1
    transpositions //= 2
    return (matches / la + matches / lb + (matches - transpositions) / matches) / 3.0


# --------------------------------------------------------------------------- dates


def _ymd(y, m, d):
    try:
        return _dt.date(y, m, d)
    except ValueError:
        return None


_NOT_MINE = object()


def _parse_common(t, f):
    """Fast paths of Rust `parse_common`: a date, None (this format does not fit), or
    _NOT_MINE (fall back to the general parser)."""
    if f == "%d/%m/%Y":
        parts = t.encode().split(b"/")
        if len(parts) < 3:
            return _NOT_MINE
        if len(parts) > 3:
            return None
        d, m, y = parts
        if not d or len(d) > 2 or not m or len(m) > 2 or len(y) != 4:
            return None
        if not (d.isdigit() and m.isdigit() and y.isdigit()):
            return _NOT_MINE
        return _ymd(int(y), int(m), int(d))
    if f == "%Y-%m-%d":
        bt = t.encode()
        if len(bt) != 10 or bt[4:5] != b"-" or bt[7:8] != b"-":
            return _NOT_MINE
        y, m, d = bt[:4], bt[5:7], bt[8:]
        if not (y.isdigit() and m.isdigit() and d.isdigit()):
            return _NOT_MINE
        return _ymd(int(y), int(m), int(d))
    return _NOT_MINE


def parse_date(s, *formats):
    if s is None:
        return None
    t = s.strip()
    if not t:
        return None
    for f in [f for f in formats if f is not None] or ["%Y-%m-%d"]:
        r = _parse_common(t, f)
        if r is None:
            continue
        if r is not _NOT_MINE:
            return r
        try:
            return _dt.datetime.strptime(t, f).date()
        except ValueError:
            continue
    return None


def parse_timestamp(s, *formats):
    if s is None:
        return None
    t = s.strip()
    if not t:
        return None
    for f in [f for f in formats if f is not None] or ["%Y-%m-%d %H:%M:%S"]:
        try:
            return _dt.datetime.strptime(t, f)
        except ValueError:
            continue
    return None


# ----------------------------------------------------------------------------- keys


def load_key():
    """The key bytes from the environment (text, or 64+ hex digits), as Rust `Key`."""
    text = (_os.environ.get(KEY_ENV) or "").strip()
    if not text:
        raise RuntimeError(f"no pseudonymisation key: {KEY_ENV} is not set")
    if len(text) >= 64 and len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text):
        key = bytes.fromhex(text)
    else:
        key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        raise RuntimeError(f"{KEY_ENV}: the key is shorter than {MIN_KEY_BYTES} bytes")
    return key


class Keys:
    """person_key_of (HMAC-SHA-256) and record_key (SipHash-2-4, 128 bits)."""

    def __init__(self, key):
        self._key = key
        d = _hmac.new(key, b"onboard record key v1", _hashlib.sha256).digest()
        self._k0 = int.from_bytes(d[0:8], "little")
        self._k1 = int.from_bytes(d[8:16], "little")

    def __repr__(self):
        return "Keys(<redacted>)"

    def _mac_hex(self, msg):
        return _hmac.new(self._key, msg, _hashlib.sha256).digest()[:16].hex()

    def person_key_of(self, nhs, issuer, local, record):
        if nhs is not None and nhs_number_valid(nhs):
            msg = b"nhs:" + "".join(c for c in nhs if "0" <= c <= "9").encode()
        elif local is not None:
            msg = b"local:" + (issuer or "").encode() + b":" + local.encode()
        elif record is not None:
            msg = b"record:" + record.encode()
        else:
            return None
        return self._mac_hex(msg)

    def record_key(self, scope, ident):
        if scope is None or ident is None:
            return None
        return siphash24_128(self._k0, self._k1, scope.encode() + b"\x00" + ident.encode()).hex()


_M = (1 << 64) - 1


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & _M


def _round(v):
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & _M
    v1 = _rotl(v1, 13) ^ v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & _M
    v3 = _rotl(v3, 16) ^ v2
    v0 = (v0 + v3) & _M
    v3 = _rotl(v3, 21) ^ v0
    v2 = (v2 + v1) & _M
    v1 = _rotl(v1, 17) ^ v2
    v2 = _rotl(v2, 32)
    return [v0, v1, v2, v3]


def siphash24_128(k0, k1, msg):
    """SipHash-2-4 with 128-bit output (the reference algorithm); 16 bytes, the two
    64-bit halves little-endian, as siphasher's `Hash128::as_bytes`."""
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F83, k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    n = len(msg)
    end = n - n % 8
    for i in range(0, end, 8):
        m = int.from_bytes(msg[i : i + 8], "little")
        v[3] ^= m
        v = _round(_round(v))
        v[0] ^= m
    b = ((n & 0xFF) << 56) | int.from_bytes(msg[end:], "little")
    v[3] ^= b
    v = _round(_round(v))
    v[0] ^= b
    v[2] ^= 0xEE
    for _ in range(4):
        v = _round(v)
    h1 = v[0] ^ v[1] ^ v[2] ^ v[3]
    v[1] ^= 0xDD
    for _ in range(4):
        v = _round(v)
    h2 = v[0] ^ v[1] ^ v[2] ^ v[3]
    return h1.to_bytes(8, "little") + h2.to_bytes(8, "little")


# ------------------------------------------------------------------------ register


def register(spark, keys=None):
    """Register every function as `onboard_<name>` on a Spark session."""
    from pyspark.sql import types as T

    s, b, d, ts, f = T.StringType(), T.BooleanType(), T.DateType(), T.TimestampNTZType(), T.DoubleType()
    plain = {
        "nhs_number_valid": (nhs_number_valid, b),
        "uk_postcode": (uk_postcode, s),
        "postcode_valid": (postcode_valid, b),
        "postcode_sector": (postcode_sector, s),
        "postcode_district": (postcode_district, s),
        "icd10_normalise": (icd10_normalise, s),
        "opcs4_normalise": (opcs4_normalise, s),
        "snomed_normalise": (snomed_normalise, s),
        "read_code_normalise": (read_code_normalise, s),
        "name_standardise": (name_standardise, s),
        "soundex": (soundex, s),
        "jaro_winkler": (jaro_winkler, f),
        "parse_date": (parse_date, d),
        "parse_timestamp": (parse_timestamp, ts),
    }
    for name, (fn, ty) in plain.items():
        spark.udf.register("onboard_" + name, fn, ty)
    keys = keys or Keys(load_key())
    spark.udf.register("onboard_person_key_of", keys.person_key_of, s)
    spark.udf.register("onboard_record_key", keys.record_key, s)
    return keys
