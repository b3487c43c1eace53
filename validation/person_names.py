"""Content-based detection of person names ("Eve Smith", "Smith, John", "SMITH John").

A column of real names under a neutral header (``person``, ``owner``, ``contact``) would
otherwise be profiled as categorical, and its real names published. The given and family names
Faker ships for Latin-script locales are the vocabulary: a value is name-like when it is two to
four words (initials allowed; capitalised, in capitals, or all in lower case) whose first word is
a known given name or whose last word is a known family name. A column is person names when most
of its distinct values are; names mostly outside that vocabulary (many East Asian and African
names) are missed, so a schema file should mark such a column ``kind: pii``.
Place and product names rarely pass both the shape and the vocabulary test for most values
("San Jose" does, "Los Angeles" and "Fort Worth" do not), and the profile shows the decision,
which a schema override (``protection: model``) reverses.
"""
from __future__ import annotations

import importlib
import re
import unicodedata
from functools import lru_cache

import pandas as pd

# Latin-script locales of faker.providers.person: the vocabulary, not the output locale
_LOCALES = ("en_US", "en_GB", "en_IE", "en_IN", "de_DE", "fr_FR", "es_ES", "es_MX", "it_IT", "pt_BR", "pt_PT",
            "nl_NL", "pl_PL", "sv_SE", "da_DK", "no_NO", "fi_FI", "cs_CZ", "tr_TR", "ro_RO", "hu_HU", "hr_HR")
MIN_SHARE = 0.8  # of a column's distinct (sampled) values that must look like names
MIN_DISTINCT = 3


def _fold(word: str) -> str:
    """Lower case without accents, so "José" and "Jose" are one name."""
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


@lru_cache(maxsize=1)
def vocabulary() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names), folded, from Faker's person providers."""
    given: set[str] = set()
    family: set[str] = set()
    for locale in _LOCALES:
        try:
            provider = importlib.import_module(f"faker.providers.person.{locale}").Provider
        except ImportError:  # a Faker without this locale
            continue
        for attr, target in (("first_names", given), ("first_names_male", given), ("first_names_female", given),
                             ("last_names", family)):
            target.update(_fold(w) for w in getattr(provider, attr, ()) or () if " " not in w)
    return frozenset(given), frozenset(family)


def _core(token: str) -> str:
    return token.rstrip(".").replace("-", "").replace("'", "").replace("’", "")


def _cased_like_names(tokens: list[str]) -> bool:
    """Every token a word or an initial ("Smith", "O'Neil", "Jean-Luc", "J."), each capitalised or
    in capitals ("SMITH John", as legacy exports write family names), or all in lower case."""
    cores = [_core(t) for t in tokens]
    if not all(c and c.isalpha() for c in cores):
        return False
    return all(c[0].isupper() for c in cores) or all(c.islower() for c in cores)


# words around a name that are not part of it: titles before, suffixes after, lower-case family
# name particles inside ("Jan van der Berg", "Ana de la Cruz")
_TITLES = frozenset({"mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "herr", "frau", "dipl", "ing",
                     "mag", "univ", "sr", "sra", "srta", "mme", "mlle", "m", "pan", "pani", "dhr", "mevr", "sig", "sig.ra"})
_SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "md", "phd", "dds", "esq", "mba", "bsc", "msc"})
_PARTICLES = frozenset({"van", "von", "der", "den", "de", "del", "della", "di", "da", "do", "dos", "das", "du",
                        "la", "le", "ten", "ter", "zu", "y", "e", "bin", "al"})


_DEGREE = re.compile(r"([A-Za-z]{1,4}\.)+[A-Za-z]{0,4}\.?|[A-Z]{2,4}")


def _bare(token: str) -> str:
    return _fold(token).rstrip(".,")


def is_person_name(value: str) -> bool:
    """Whether ``value`` reads as one person's name (see the module docstring)."""
    if value.count(",") == 1:  # "Smith, John"
        family_part, given_part = value.split(",")
        value = f"{given_part.strip()} {family_part.strip()}"
    tokens = value.split()
    while tokens and any(part in _TITLES for part in _bare(tokens[0]).replace("-", ".").split(".") if part):
        tokens = tokens[1:]
    # suffixes and degrees: "Jr.", "DVM", "Ph.D.", "B.Eng."
    while len(tokens) > 2 and (_bare(tokens[-1]) in _SUFFIXES or _DEGREE.fullmatch(tokens[-1])):
        tokens = tokens[:-1]
    words = [t for t in tokens if t.lower() not in _PARTICLES]
    if not 2 <= len(words) <= 4 or not _cased_like_names(words):
        return False
    given, family = vocabulary()
    first, last = _bare(words[0]), _bare(words[-1])
    return (first in given or first.split("-")[0] in given
            or last in family or any(part in family for part in last.split("-"))
            or (first in family and last in given))  # family name first: "Kovács Julianna"


def looks_like_person_names(values: pd.Series) -> bool:
    """Whether most distinct values of ``values`` (text) are person names."""
    distinct = pd.Series(pd.unique(values.astype(str).str.strip()))
    if len(distinct) < MIN_DISTINCT:
        return False
    allowed_misses = len(distinct) - MIN_SHARE * len(distinct)
    # one word, with no comma, is never a name: a column of codes or keys is settled here, in one
    # vectorised pass, instead of by a Python test of every distinct value
    if int((~distinct.str.contains(r"[\s,]")).sum()) > allowed_misses:
        return False
    misses = 0
    for value in distinct:
        misses += not is_person_name(value)
        if misses > allowed_misses:
            return False
    return True
