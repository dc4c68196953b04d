"""Reading dial lists as CRM and Excel export them (pure: files in, rows out).

* Encoding: UTF-8 with or without BOM; otherwise detected
  (charset-normalizer), Windows-1252 as German Excel writes it by default;
  a NUL byte means a binary file, which is refused.
* Dialect: ``;`` ``,`` tab or ``|``, sniffed; quoted fields may hold newlines.
* Columns by header name, German and English synonyms built in; a mapping
  file (TOML ``[columns] phone = "Tel. privat"``) for unusual headers.
  Columns that map to nothing are kept as the record's extra fields (for
  screen pops and rules).
* Excel workbooks (``.xlsx``, recognised by content, not by name): the
  first sheet, read-only and streaming (openpyxl), cached values instead of
  formulas, whole numbers without a trailing ``.0``, dates as ISO dates.
  Old binary ``.xls`` files are refused with a hint.
* Rows are read one at a time (constant memory, whatever the file size).

Every problem is reported per row with the field and the reason.
"""

from __future__ import annotations

import codecs
import csv
import functools
import io
import shutil
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from charset_normalizer import from_bytes

from core.errors import Invalid
from core.numbers import Number, Rejected, normalize

#: A field longer than this is refused (a CRM field is never this long; a
#: binary blob or a broken export is).  Fields the store keeps in sized
#: columns have their own, smaller limits (``ListReader(limits=...)``).
MAX_FIELD = 1000
#: csv's own limit, raised so that one over-long field is reported, not fatal.
csv.field_size_limit(1 << 20)

SYNONYMS: dict[str, tuple[str, ...]] = {
    "phone": (
        "phone",
        "telefon",
        "telefonnummer",
        "tel",
        "phone_number",
        "phonenumber",
        "number",
        "rufnummer",
        "mobile",
        "mobil",
        "handy",
        "festnetz",
        "telephone",
    ),
    "first_name": ("first_name", "firstname", "vorname", "given_name", "first name"),
    "last_name": (
        "last_name",
        "lastname",
        "nachname",
        "surname",
        "family_name",
        "name",
        "last name",
    ),
    "company": ("company", "firma", "organisation", "organization", "unternehmen"),
    "street": ("street", "strasse", "straße", "address", "adresse", "anschrift"),
    "postal_code": ("zip", "plz", "postal_code", "postcode", "postleitzahl", "zip code"),
    "city": ("city", "ort", "stadt", "wohnort"),
    "country": ("country", "land", "country_code", "laendercode", "ländercode"),
    "email": ("email", "e-mail", "mail", "e_mail"),
    "priority": ("priority", "prio", "priorität", "prioritaet"),
}
FIELDS = tuple(SYNONYMS)
#: Spreadsheet formula prefixes: such a value is neutralised when exported.
FORMULA_PREFIXES = ("=", "+", "-", "@")


class ListError(Invalid):
    """The file as a whole cannot be read; ``field`` names what is wrong."""


@dataclass(frozen=True)
class RowProblem:
    row: int
    field: str
    reason: str


@dataclass
class ListRow:
    row: int
    number: Number
    fields: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict)
    priority: int = 0

    @property
    def phonetic(self) -> str:
        """Cologne phonetics of the name, computed once per row."""
        key = self.__dict__.get("_phonetic")
        if key is None:
            key = self.__dict__["_phonetic"] = phonetic_key(
                self.fields.get("first_name", ""), self.fields.get("last_name", "")
            )
        return key


# -- file level -------------------------------------------------------------------------
def detect_encoding(sample: bytes) -> str:
    if not sample:
        raise ListError("file", "empty file")
    if b"\x00" in sample:
        raise ListError("file", "binary file (NUL bytes), not a CSV export")
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(sample).best()
    guess = (best.encoding if best else "cp1252").lower()
    # German Excel: cp1252; latin-1 detections are read as cp1252 (a superset)
    return (
        "cp1252" if guess in ("latin_1", "iso8859_1", "iso-8859-1", "latin-1", "cp1250") else guess
    )


def sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text, delimiters=";,\t|")
    except csv.Error:
        first = text.splitlines()[0] if text else ""
        counts = {d: first.count(d) for d in ";,\t|"}
        delimiter = max(counts, key=counts.get)  # type: ignore[arg-type]
        if not counts[delimiter]:
            return csv.excel  # one column

        class Guessed(csv.excel):
            pass

        Guessed.delimiter = delimiter
        return Guessed


def load_mapping(path: str | Path) -> dict[str, str]:
    """``[columns]`` field = "Header in the file"."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ListError("mapping", f"cannot read {path}: {exc}") from None
    columns = data.get("columns")
    if not isinstance(columns, dict):
        raise ListError("mapping", 'needs a [columns] table: field = "header"')
    for key, value in columns.items():
        if key not in FIELDS:
            raise ListError(f"mapping.columns.{key}", f"unknown field (one of {', '.join(FIELDS)})")
        if not isinstance(value, str):
            raise ListError(f"mapping.columns.{key}", "must be the header text")
    return dict(columns)


def map_headers(headers: list[str], mapping: Mapping[str, str] | None = None) -> dict[int, str]:
    """Column index -> field name (or ``extra:<header>``)."""
    wanted = {v.strip().lower(): k for k, v in (mapping or {}).items()}
    out: dict[int, str] = {}
    taken: set[str] = set()
    for i, raw in enumerate(headers):
        name = raw.strip().lower()
        target = wanted.get(name)
        if target is None:
            target = next(
                (
                    f
                    for f, syn in SYNONYMS.items()
                    if name in syn and f not in taken and f not in wanted.values()
                ),
                None,
            )
        if target is not None and target not in taken:
            out[i] = target
            taken.add(target)
        else:
            out[i] = f"extra:{raw.strip() or f'column {i + 1}'}"
    if "phone" not in taken:
        raise ListError(
            "header",
            f"no phone column (headers: {', '.join(h.strip() for h in headers)}; a phone"
            f" column is headed e.g. {', '.join(SYNONYMS['phone'][:3])})",
        )
    return out


# -- rows -------------------------------------------------------------------------------------
def _taking(lines: Iterable[str], taken: list[str]) -> Iterator[str]:
    """``lines``, each also put in ``taken`` (the caller clears it per record)."""
    for line in lines:
        taken.append(line)
        yield line


class ListReader:
    """Iterates a list file; collects one problem per rejected row."""

    def __init__(
        self,
        path: str | Path,
        *,
        region: str | None = None,
        mapping: Mapping[str, str] | None = None,
        encoding: str | None = None,
        delimiter: str | None = None,
        limits: Mapping[str, int] | None = None,
        foreign: Callable[[Number], str | None] | None = None,
    ) -> None:
        """``limits``: field -> the most characters it may have, from the
        columns that will hold it (the store passes them: this module knows
        no database); a longer value is a rejected row naming the field, not
        a failed import on a database that refuses it.  ``foreign``: why the
        campaign may not call a number at all (another country's), or None;
        such a row is rejected with that reason."""
        self.path = Path(path)
        self.foreign = foreign
        self.region = region
        self.mapping = mapping
        self.limits = dict(limits or {})
        try:
            with open(self.path, "rb") as fh:
                sample = fh.read(64 * 1024)
        except OSError as exc:
            raise ListError("file", f"cannot read {path}: {exc.strerror}") from None
        self.rows_read = 0
        self.problems = Problems()
        self.formula_fields = 0
        self.columns: dict[int, str] = {}
        self.kind = "csv"
        self.size = self.path.stat().st_size
        self._position: Any = lambda: 0.0  # share of the file read so far
        if sample.startswith(XLS_MAGIC):
            raise ListError("file", "an old binary Excel file (.xls): save it as .xlsx or CSV")
        if sample.startswith(b"PK\x03\x04"):
            self.kind, self.encoding = "xlsx", "xlsx"

            class Workbook(csv.excel):
                pass

            self.dialect: Any = Workbook
            return
        self.encoding = encoding or detect_encoding(sample)
        text = sample.decode(self.encoding, errors="replace")
        if delimiter:

            class Given(csv.excel):
                pass

            Given.delimiter = delimiter
            self.dialect = Given
        else:
            self.dialect = sniff_dialect(text[: 16 * 1024])

    def __iter__(self) -> Iterator[ListRow]:
        if self.kind == "xlsx":
            yield from self._iter_xlsx()
            return
        # the binary file under the text one tells how far the import is
        with (
            open(self.path, "rb") as raw,
            io.TextIOWrapper(raw, encoding=self.encoding, errors="strict", newline="") as fh,
        ):
            self._position = lambda: raw.tell() / self.size if self.size else 1.0
            # strict: a quote opened and never closed is an error at the end of
            # the file, not one field swallowing every row after it; any other
            # record strict parsing refuses (a quote inside a quoted field that
            # is not doubled: "ACME "Best" GmbH") is read again leniently from
            # the lines it took, as it always was
            taken: list[str] = []
            reader = csv.reader(_taking(fh, taken), self.dialect, strict=True)
            try:
                headers = next(reader)
            except StopIteration:
                raise ListError("file", "empty file") from None
            except UnicodeDecodeError as exc:
                raise ListError(
                    "encoding", f"not {self.encoding}: {exc.reason} (use --encoding)"
                ) from None
            self.columns = map_headers(headers, self.mapping)
            width = len(headers)
            while True:
                first_line = reader.line_num + 1
                taken.clear()
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as exc:
                    raise ListError(
                        "encoding",
                        f"not {self.encoding} near row {self.rows_read + 2}: {exc.reason}",
                    ) from None
                except csv.Error as exc:
                    lenient = None
                    if str(exc) != "unexpected end of data":
                        lenient = next(csv.reader(taken, self.dialect), None)
                    if lenient is None:
                        self.rows_read += 1
                        reason = (
                            f"a quote opened on line {first_line} is never closed: lines "
                            f"{first_line}-{reader.line_num} (the end of the file) read as one row"
                            if str(exc) == "unexpected end of data"
                            else f"unreadable: {exc}"
                        )
                        self.problems.append(RowProblem(first_line, "row", reason))
                        continue
                    values = lenient
                if not any(v.strip() for v in values):
                    continue  # blank line
                self.rows_read += 1
                row = self.rows_read + 1  # the header is row 1
                result = self._row(row, values, width)
                if isinstance(result, RowProblem):
                    self.problems.append(result)
                else:
                    yield result

    def position(self) -> float:
        """The share of the file read so far (0..1), for a progress bar."""
        return float(self._position())

    def _iter_xlsx(self) -> Iterator[ListRow]:
        import zipfile

        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        try:
            book = load_workbook(self.path, read_only=True, data_only=True)
        except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
            raise ListError("file", f"not a readable .xlsx workbook ({exc})") from None
        try:
            sheet = book.worksheets[0]
            rows = sheet.iter_rows(values_only=True)
            headers = next(rows, None)
            if headers is None or not any(h is not None for h in headers):
                raise ListError("file", "empty file")
            total = max(1, (sheet.max_row or 1) - 1)
            names = [cell_text(h) for h in headers]
            while names and not names[-1]:
                names.pop()  # trailing empty header cells
            self.columns = map_headers(names, self.mapping)
            width = len(names)
            for number, values in enumerate(rows, start=2):
                self._position = lambda n=number: min(1.0, (n - 1) / total)
                cells = [cell_text(v) for v in values[:width]]
                cells += [""] * (width - len(cells))
                if not any(c.strip() for c in cells):
                    continue
                self.rows_read += 1
                result = self._row(number, cells, width)
                if isinstance(result, RowProblem):
                    self.problems.append(result)
                else:
                    yield result
        finally:
            book.close()

    def _row(self, row: int, values: list[str], width: int) -> ListRow | RowProblem:
        if len(values) != width:
            return RowProblem(row, "row", f"{len(values)} fields, the header has {width}")
        fields: dict[str, str] = {}
        extra: dict[str, str] = {}
        for i, value in enumerate(values):
            name = self.columns[i]
            value = value.strip()
            limit = self.limits.get(name)
            if limit is not None and limit < len(value) <= MAX_FIELD:
                return RowProblem(row, name, f"at most {limit} characters ({len(value)} given)")
            if len(value) > MAX_FIELD:
                label = name[6:] if name.startswith("extra:") else name
                return RowProblem(row, label, f"longer than {MAX_FIELD} characters")
            if value.startswith(FORMULA_PREFIXES) and name != "phone":
                self.formula_fields += 1
            if name.startswith("extra:"):
                extra[name[6:]] = value
            else:
                fields[name] = value
        region = (fields.get("country") or self.region or "").upper() or None
        if region is not None and len(region) != 2:
            return RowProblem(
                row, "country", f"{fields.get('country')!r} is not a two-letter country code"
            )
        number = normalize(fields.get("phone", ""), region)
        if isinstance(number, Rejected):
            reason, raw = number.reason, fields.get("phone", "")
            if (
                region is None
                and raw
                and not raw.startswith("+")
                and reason.startswith("not a phone")
            ):
                # phonenumbers' "Missing or invalid default region." names no fix
                reason = (
                    "not a phone number: national numbers need a region"
                    " (the import's region, or a country column)"
                )
            return RowProblem(row, "phone", f"{reason}: {fields.get('phone', '')!r}")
        why = self.foreign(number) if self.foreign is not None else None
        if why is not None:
            return RowProblem(row, "phone", f"{why}: {fields.get('phone', '')!r}")
        priority = 0
        if fields.get("priority"):
            try:
                priority = int(fields["priority"])
            except ValueError:
                return RowProblem(row, "priority", f"{fields['priority']!r} is not a whole number")
        return ListRow(row, number, fields, extra, priority)


#: the OLE2 compound-file signature of old binary .xls files
XLS_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")


def cell_text(value: Any) -> str:
    """An Excel cell as the text a CSV export would hold."""
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 4930123456.0 -> "4930123456"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def export_safe(value: str) -> str:
    """A cell that a spreadsheet will not run as a formula (CSV injection)."""
    return "'" + value if value.startswith(FORMULA_PREFIXES) else value


def rejected_csv(problems: Iterable[RowProblem]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "field", "reason"])
    for p in problems:
        writer.writerow([p.row, p.field, export_safe(p.reason)])
    return out.getvalue()


class Problems:
    """The rejected rows of one file: every one counted and spooled to a
    temporary file as a CSV line, the first ``keep`` also held for the report
    (a million-row file with 10 % bad rows would otherwise hold 100,000 of
    them in memory).  Iterating gives the kept ones; ``len`` counts all."""

    def __init__(self, keep: int = 1000) -> None:
        self.keep = keep
        self.kept: list[RowProblem] = []
        self.count = 0
        self._spool: Any = None

    def append(self, problem: RowProblem) -> None:
        self.count += 1
        if len(self.kept) < self.keep:
            self.kept.append(problem)
        if self._spool is None:
            # lives until write_csv / close: one spool per file read
            self._spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115
            self._writer = csv.writer(self._spool)
            self._writer.writerow(["row", "field", "reason"])
        self._writer.writerow([problem.row, problem.field, export_safe(problem.reason)])

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[RowProblem]:
        return iter(self.kept)

    def __bool__(self) -> bool:
        return self.count > 0

    def write_csv(self, target: Path) -> None:
        """All rejected rows as CSV (row, field, reason) at ``target``."""
        if self._spool is None:
            target.write_text(rejected_csv(()), encoding="utf-8")
            return
        self._spool.flush()
        self._spool.seek(0)
        with open(target, "w", encoding="utf-8", newline="") as out:
            shutil.copyfileobj(self._spool, out)

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None


# -- duplicates ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1 << 16)
def _cologne(name: str) -> str:
    """One name's code; names repeat a lot in real lists (Müller, Schmidt,
    Maria, ...), so codes are cached."""
    from cologne_phonetics import encode

    return "-".join(c for _, c in encode(name)) if name.strip() else ""


def phonetic_key(first: str, last: str) -> str:
    """Cologne phonetics of the surname and first name (Meyer, Meier, Maier → 67)."""
    return f"{_cologne(last)}|{_cologne(first)}"


@dataclass
class PhoneticGroups:
    """Possible duplicates without comparing all pairs.

    Blocking: records meet only inside a block of the same Cologne code of
    surname and first name *and* the same postal code (a person written two
    ways still lives in one place; without a postal code, the name alone).
    Inside a block, each record joins the first cluster whose anchor is at
    least ``threshold`` similar on name + address (rapidfuzz token sort
    ratio), or starts a new one.  A cluster of two or more records with
    different numbers is a group; the record with the most data is the
    suggested one to keep."""

    threshold: float = 85.0
    #: per block key: (number, name + address, how many fields are filled);
    #: only that, so a million rows stay small
    blocks: dict[str, list[Member]] = field(default_factory=dict)

    def add(self, e164: str, fields: Mapping[str, str], key: str | None = None) -> None:
        if key is None:
            key = phonetic_key(fields.get("first_name", ""), fields.get("last_name", ""))
        if key != "|":
            self.blocks.setdefault(key, []).append(member(e164, fields))

    def groups(self) -> list[dict[str, Any]]:
        return block_groups(self.blocks.items(), self.threshold)


Member = tuple[str, str, int]  # (number, identity, fields filled)


def block_groups(
    blocks: Iterable[tuple[str, list[Member]]], threshold: float = PhoneticGroups.threshold
) -> list[dict[str, Any]]:
    """Groups of possible duplicates, one block (phonetic key) at a time.

    ``blocks`` may be a stream (e.g. rows read from the database in key
    order): only one block is held at a time."""
    from rapidfuzz import fuzz, process

    out = []
    for key, members in blocks:
        distinct = list({m[0]: m for m in members}.values())
        if len(distinct) < 2:
            continue
        # the postal code leads the identity: sub-blocks without a second dict
        by_place: dict[str, list[Member]] = {}
        for m in distinct:
            by_place.setdefault(m[1].split(" ", 1)[0], []).append(m)
        clusters: list[list[Member]] = []
        for place in by_place.values():
            if len(place) > 1:
                clusters += _clusters(place, threshold, process, fuzz)
        for similar in clusters:
            if len(similar) < 2:
                continue
            keep = max(similar, key=lambda m: m[2])  # the record with the most data
            out.append({"key": key, "numbers": [m[0] for m in similar], "suggested_keep": keep[0]})
    return out


def member(e164: str, fields: Mapping[str, str]) -> Member:
    """What grouping keeps of a record."""
    return (e164, _identity(fields), sum(1 for v in fields.values() if v))


def _clusters(items: list[Member], threshold: float, process: Any, fuzz: Any) -> list[list[Member]]:
    """Each record joins the first cluster whose anchor is similar enough."""
    anchors: list[str] = []
    clusters: list[list[Member]] = []
    for m in items:
        hit = (
            process.extractOne(m[1], anchors, scorer=fuzz.token_sort_ratio, score_cutoff=threshold)
            if anchors
            else None
        )
        if hit is None:
            anchors.append(m[1])
            clusters.append([m])
        else:
            clusters[hit[2]].append(m)
    return clusters


def _identity(fields: Mapping[str, str]) -> str:
    """Name and address for the similarity check; the postal code first (or
    "-"), so that records can be sub-blocked by place without storing it twice."""
    place = fields.get("postal_code", "").strip().replace(" ", "") or "-"
    rest = " ".join(fields.get(k, "") for k in ("first_name", "last_name", "street", "city"))
    return f"{place} {rest}".lower()
