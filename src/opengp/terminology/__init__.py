"""The terminology starter set: the SNOMED CT, dm+d and NHS codes OpenGP's generator and
screens use, with their display terms, looked up by a stable key ("hypertension").

The codes and terms are facts from the published releases (SNOMED CT UK Edition, dm+d,
NHS Data Dictionary, UK Core); the set lives in `starter.csv` beside this module.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

SNOMED = "http://snomed.info/sct"
DMD = "https://dmd.nhs.uk"
STARTER = Path(__file__).with_name("starter.csv")


@dataclass(frozen=True, slots=True)
class Concept:
    key: str
    kind: str  # condition, observable, medication, vaccine, allergen, procedure, ...
    system: str
    code: str
    display: str

    def coding(self) -> dict[str, str]:
        return {"system": self.system, "code": self.code, "display": self.display}

    def codeable(self, text: str | None = None) -> dict[str, Any]:
        return {"coding": [self.coding()], "text": text or self.display}


@cache
def starter_set() -> dict[str, Concept]:
    with STARTER.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {
        row["key"]: Concept(row["key"], row["kind"], row["system"], row["code"], row["display"])
        for row in rows
    }


def concept(key: str) -> Concept:
    try:
        return starter_set()[key]
    except KeyError:
        raise KeyError(f"{key!r} is not in the terminology starter set") from None


def of_kind(kind: str) -> list[Concept]:
    return [c for c in starter_set().values() if c.kind == kind]
