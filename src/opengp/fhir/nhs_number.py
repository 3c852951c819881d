"""NHS numbers: ten digits, the last a modulus-11 check digit.

https://www.datadictionary.nhs.uk/attributes/nhs_number.html: multiply the first nine digits
by the weights 10 down to 2, take 11 minus (sum mod 11); 11 becomes 0, and 10 means the
nine digits can never form a valid number. UK Core identifies them with the system below
(https://simplifier.net/hl7fhirukcorer4/ukcore-patient).
"""

from __future__ import annotations

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def _is_ascii_digits(value: str) -> bool:
    # str.isdigit alone accepts non-ASCII digits such as "٣" or "²".
    return value.isascii() and value.isdigit()


def check_digit(first_nine: str) -> int | None:
    """The check digit completing `first_nine`, or None when there is none (modulus 10)."""
    if len(first_nine) != 9 or not _is_ascii_digits(first_nine):
        raise ValueError(f"expected nine digits, got {first_nine!r}")
    total = sum(int(digit) * weight for digit, weight in zip(first_nine, _WEIGHTS, strict=True))
    remainder = 11 - total % 11
    if remainder == 11:
        return 0
    return None if remainder == 10 else remainder


def is_valid_nhs_number(value: str) -> bool:
    """True for exactly ten ASCII digits whose last digit is the right check digit."""
    if len(value) != 10 or not _is_ascii_digits(value):
        return False
    return check_digit(value[:9]) == int(value[9])
