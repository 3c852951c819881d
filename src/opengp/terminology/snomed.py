"""SNOMED CT identifier (SCTID) structure checks.

An SCTID is 6-18 decimal digits with no leading zero. Read from the right, the last digit is a
Verhoeff check digit and the two before it are the partition identifier: the first of the two
says whether the id is short-format (``0``, International release) or long-format (``1``, it
carries a seven-digit namespace such as the UK's ``1000000`` or the UK drug extension's
``1000001``), the second says what the id identifies (``0`` concept, ``1`` description,
``2`` relationship, ...). dm+d VTM/VMP/AMP/VMPP/AMPP ids are SCTIDs for concepts too.

See the SNOMED CT Technical Implementation Guide, "SCTID Data Type" and "Check-digit"
(https://confluence.ihtsdotools.org/display/DOCTIG/).
"""

from __future__ import annotations

# Verhoeff dihedral-group multiplication (_D) and permutation (_P) tables.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)

#: Partition identifiers defined by SNOMED International: short (0x) and long (1x) format for
#: concept, description, relationship, subset, mapping target and extension-namespace ids.
PARTITIONS = frozenset({"00", "01", "02", "03", "04", "05", "10", "11", "12", "13", "14", "15"})
#: Partition identifiers of concept ids (short and long format).
CONCEPT_PARTITIONS = frozenset({"00", "10"})


def verhoeff_valid(digits: str) -> bool:
    """True when ``digits`` (check digit last) passes the Verhoeff check."""
    if not digits.isascii() or not digits.isdigit():
        return False
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _D[check][_P[position % 8][int(char)]]
    return check == 0


def partition(code: str) -> str:
    """The two-digit partition identifier of an SCTID (the digits before the check digit)."""
    return code[-3:-1]


def is_valid_sctid(code: str) -> bool:
    """True when ``code`` is a structurally valid SCTID: 6-18 digits, no leading zero, a known
    partition identifier and a correct Verhoeff check digit. It does not say the id exists in
    any release."""
    return (
        6 <= len(code) <= 18
        and code.isascii()
        and code.isdigit()
        and code[0] != "0"
        and partition(code) in PARTITIONS
        and verhoeff_valid(code)
    )


def is_concept_id(code: str) -> bool:
    """True when ``code`` is a valid SCTID whose partition says it identifies a concept."""
    return is_valid_sctid(code) and partition(code) in CONCEPT_PARTITIONS
