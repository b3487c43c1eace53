"""The one schema type: the profile of the real table, passed everywhere.

It is produced by :mod:`validation.profile`, may be edited by the user as YAML, and is read by
protections, generators, expectations and the release manifest.
"""
from __future__ import annotations

import base64
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml
from pydantic import BaseModel, Field

from validation.errors import InputError, one_line, yaml_problem


class ColumnKind(str, Enum):
    INTEGER = "integer"
    FLOAT = "float"
    CATEGORICAL = "categorical"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    TEXT = "text"
    KEY = "key"
    PII = "pii"


class PIIType(str, Enum):
    EMAIL = "email"
    PHONE = "phone"
    PERSON_NAME = "person_name"
    NATIONAL_ID = "national_id"
    ADDRESS = "address"
    IP_ADDRESS = "ip_address"
    CREDIT_CARD = "credit_card"


class Protection(str, Enum):
    """What happens to a column before any generator sees the data."""

    MODEL = "model"  # the generator learns it
    REGENERATE = "regenerate"  # fresh unique ids in the same format (keys)
    FAKE = "fake"  # replaced by Faker values of the same kind (PII, free text)
    DROP = "drop"  # removed from the release


_KINDS = {k.value for k in ColumnKind}


def default_protection(kind: ColumnKind) -> Protection:
    """The protection a column of ``kind`` gets unless the schema file says otherwise."""
    if kind == ColumnKind.KEY:
        return Protection.REGENERATE
    if kind in (ColumnKind.PII, ColumnKind.TEXT):
        return Protection.FAKE
    return Protection.MODEL


class CategoryCount(BaseModel):
    value: str | int | float | bool
    count: int


class ColumnSchema(BaseModel):
    """Profile of one column of the real table."""

    name: str
    kind: ColumnKind
    arrow_type: str = Field(description="Arrow type of the source column, e.g. int64, string")
    nullable: bool = True
    null_rate: float = 0.0
    n_unique: int = 0
    min: float | str | None = Field(None, description="numeric minimum or ISO datetime")
    max: float | str | None = Field(None, description="numeric maximum or ISO datetime")
    decimals: int | None = Field(None, description="decimal places seen in float values")
    categories: list[CategoryCount] | None = Field(
        None, description="value frequencies, most frequent first (categorical/boolean only)"
    )
    datetime_format: str | None = None
    pii_type: PIIType | None = None
    key_pattern: str | None = Field(None, description="shape of key values, e.g. 'N#####' ")
    protection: Protection = Protection.MODEL

    @property
    def is_constant(self) -> bool:
        return self.n_unique == 1 and self.null_rate == 0.0

    @property
    def is_all_null(self) -> bool:
        return self.null_rate >= 1.0

    @property
    def modeled(self) -> bool:
        """True when a generator learns this column (the others are filled by protections)."""
        return (
            self.protection == Protection.MODEL
            and default_protection(self.kind) == Protection.MODEL
            and not self.is_all_null
        )

    @property
    def fill(self) -> Protection | None:
        """How the synthetic table gets this column when no generator learns it: the one rule
        used for refilling and for the set of real values that must never reappear."""
        p = default_protection(self.kind) if self.protection == Protection.MODEL else self.protection
        return p if p in (Protection.REGENERATE, Protection.FAKE) else None

    @property
    def category_values(self) -> list[Any]:
        return [c.value for c in self.categories or []]

    @property
    def seen_category_values(self) -> list[Any]:
        """Categories with rows: a pandas category column lists its unused ones with count 0."""
        return [c.value for c in self.categories or [] if c.count > 0]


class TableSchema(BaseModel):
    """Profile of the whole real table."""

    name: str
    n_rows: int
    columns: list[ColumnSchema]
    arrow_schema_b64: str = Field("", description="the source Arrow schema, IPC-serialized")

    def column(self, name: str) -> ColumnSchema:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def modeled_columns(self) -> list[ColumnSchema]:
        return [c for c in self.columns if c.modeled]

    @property
    def released_columns(self) -> list[ColumnSchema]:
        return [c for c in self.columns if c.protection != Protection.DROP]

    # Arrow schema -------------------------------------------------------------------------
    @staticmethod
    def encode_arrow(schema: pa.Schema) -> str:
        return base64.b64encode(schema.serialize().to_pybytes()).decode("ascii")

    def arrow_schema(self) -> pa.Schema:
        """The source's Arrow schema restricted to the released columns, in source order."""
        full = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(self.arrow_schema_b64)))
        keep = [c.name for c in self.released_columns]
        return pa.schema([full.field(n) for n in keep], metadata=None)

    # YAML round trip for user overrides ----------------------------------------------------
    def to_yaml(self, path: Path) -> None:
        data = self.model_dump(mode="json", exclude={"arrow_schema_b64"})
        path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))

    def apply_overrides(self, path: Path) -> "TableSchema":
        """Apply a user's schema file: any column field given there wins over detection."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"schema file not found: {path}") from None
        except yaml.YAMLError as exc:
            raise InputError(f"schema file {path} is not valid YAML: {yaml_problem(exc)}") from None
        except (OSError, UnicodeDecodeError) as exc:  # a folder, no permission, not UTF-8
            raise InputError(f"schema file {path} cannot be read: {one_line(exc)}") from None
        if not isinstance(data, dict) or not isinstance(data.get("columns"), list):
            raise InputError(f"schema file {path} needs a 'columns' list")
        by_name = {c.name: c for c in self.columns}
        updated = dict(by_name)
        for entry in data["columns"]:
            if not isinstance(entry, dict) or "name" not in entry:
                raise InputError(f"schema file {path}: every column entry needs a 'name'")
            name = entry["name"]
            if not isinstance(name, str):  # e.g. "name: [city]": a list cannot name a column
                raise InputError(f"schema file {path}: a column entry's name must be text, not {name!r}")
            if name not in by_name:
                raise InputError(
                    f"schema file {path} names column {name!r}, which the source does not have"
                )
            # what the profile measures comes from this source, whatever the file says: a file
            # is reused as the data grows, and Parquet reads back timestamp[s] as timestamp[ms]
            merged = by_name[name].model_dump() | {k: v for k, v in entry.items() if k not in _MEASURED}
            # a kind that is no kind's name (a typo, "[pii]") is left to the validation below
            if "protection" not in entry and isinstance(entry.get("kind"), str) and entry["kind"] in _KINDS:
                merged["protection"] = default_protection(ColumnKind(entry["kind"]))
            try:
                col = ColumnSchema.model_validate(merged)
            except Exception as exc:  # pydantic's message names the bad field
                first = str(exc).splitlines()
                raise InputError(
                    f"schema file {path}, column {name!r}: {one_line(' '.join(first[:3]))}"
                ) from None
            if col.protection == Protection.MODEL and default_protection(col.kind) != Protection.MODEL:
                # a file written by `synthpipe profile --write` repeats the detected kind beside the
                # edited protection: only a kind other than the detected one contradicts it
                explicit_kind = "kind" in entry and entry["kind"] != by_name[name].kind.value
                col = _modeled_as_detected_type(col, explicit_kind, where=f"schema file {path}")
            _require_modelable(col, where=f"schema file {path}")
            if isinstance(col.min, (int, float)) and isinstance(col.max, (int, float)) and col.min > col.max:
                raise InputError(f"schema file {path}, column {name!r}: min {col.min!r} is above max {col.max!r}")
            updated[name] = col
        return self.model_copy(update={"columns": [updated[c.name] for c in self.columns]})


# what the profile measured about the source's column, as opposed to what a schema file may set:
# a date column "retyped" as string in the file was modeled as categorical and published all null
_MEASURED = frozenset({"arrow_type", "null_rate", "n_unique"})


_TEMPORAL_ARROW = ("date", "timestamp")
_INTEGER_ARROW = ("int", "uint")
_NUMERIC_ARROW = _INTEGER_ARROW + ("float", "double", "halffloat", "decimal")
_TEXT_ARROW = ("string", "large_string", "string_view", "utf8", "large_utf8", "null")


def _arrow_family(arrow_type: str) -> str:
    """``"integer"``, ``"float"`` (also decimals), ``"temporal"`` (dates, timestamps),
    ``"boolean"``, ``"text"`` (also null) or ``"other"`` (times of day, durations, binary, nested:
    no generator models them) for an Arrow type as ``str(pa.DataType)`` writes it (a dictionary
    type by its values)."""
    t = arrow_type.strip().removeprefix("dictionary<values=")
    if t.startswith(_TEMPORAL_ARROW):
        return "temporal"
    if t.startswith(_NUMERIC_ARROW):
        return "integer" if t.startswith(_INTEGER_ARROW) else "float"
    if t.startswith("bool"):
        return "boolean"
    if t.startswith(_TEXT_ARROW):
        return "text"
    return "other"


def _modeled_as_detected_type(col: ColumnSchema, explicit_kind: bool, where: str) -> ColumnSchema:
    """A key, PII or free-text column whose schema entry says ``protection: model``: the user
    overrides the detection, so the generator learns it as the kind its values have (numbers as
    integer or float, text as categorical, dates as datetime); its PII type and key shape no
    longer apply. The same entry naming kind key/pii/text is a contradiction, and a column whose
    values no generator models (times of day, binary, nested) cannot be modeled: both are errors.
    ``explicit_kind``: the entry sets the kind to key, pii or text (not the detected kind)."""
    family = _arrow_family(col.arrow_type)
    if explicit_kind:
        raise InputError(
            f"{where}, column {col.name!r}: a {col.kind.value} column is never modeled (its protection is "
            f"regenerate, fake or drop); to have the generator learn it, give it the kind of its values "
            f"(categorical, integer, float, boolean or datetime) or leave out kind"
        )
    if family == "other":
        raise InputError(
            f"{where}, column {col.name!r}: no generator models {col.arrow_type} values; leave its "
            f"protection at drop"
        )
    kind = {"integer": ColumnKind.INTEGER, "float": ColumnKind.FLOAT, "temporal": ColumnKind.DATETIME,
            "boolean": ColumnKind.BOOLEAN}.get(family, ColumnKind.CATEGORICAL)
    return col.model_copy(update={"kind": kind, "pii_type": None, "key_pattern": None})


def _require_modelable(col: ColumnSchema, where: str) -> None:
    """A modeled categorical or boolean column must hold values that can be categories: text,
    numbers or booleans. Dates as categories would be written as text into the release's
    expectations and lose their type in the generators: refused, with what to use instead."""
    if not col.modeled or col.kind not in (ColumnKind.CATEGORICAL, ColumnKind.BOOLEAN):
        return
    family = _arrow_family(col.arrow_type)
    if family in ("temporal", "other"):
        instead = "keep kind: datetime" if family == "temporal" else "set protection: drop"
        raise InputError(
            f"{where}, column {col.name!r}: {col.arrow_type} values cannot be {col.kind.value} "
            f"(categories must be text, numbers or booleans); {instead}"
        )
