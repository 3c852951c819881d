"""NHS number modulus-11 check digit (https://www.datadictionary.nhs.uk/attributes/nhs_number.html)."""

from __future__ import annotations

import pytest

from opengp.fhir.nhs_number import check_digit, is_valid_nhs_number


@pytest.mark.parametrize(
    "number",
    [
        "9434765919",  # the well-known NHS Digital test patient
        "9990000018",  # 9*10+9*9+9*8+1*2 = 245; 245 % 11 = 3; 11 - 3 = 8
        "4010232137",
        "0000000000",  # sum 0 -> 11 -> check digit 0
    ],
)
def test_valid_numbers(number: str) -> None:
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "9434765918",  # wrong check digit
        "9434765910",
        "943476591",  # nine digits
        "94347659190",  # eleven digits
        "943 476 5919",  # spaces are presentation, not the value
        "943476591X",
        "abcdefghij",
        "",
        "٩٤٣٤٧٦٥٩١٩",  # Arabic-Indic digits: str.isdigit() is True, still not an NHS number
        "0000000060",  # the first nine digits give check digit 10: never issued
    ],
)
def test_invalid_numbers(number: str) -> None:
    assert not is_valid_nhs_number(number)


def test_check_digit() -> None:
    assert check_digit("943476591") == 9
    assert check_digit("999000001") == 8
    assert check_digit("000000000") == 0  # 11 -> 0


def test_check_digit_ten_means_no_valid_number() -> None:
    # 6 * 2 = 12; 12 % 11 = 1; 11 - 1 = 10
    assert check_digit("000000006") is None
    assert not any(is_valid_nhs_number(f"000000006{d}") for d in range(10))


@pytest.mark.parametrize("bad", ["12345678", "1234567890", "12345678x"])
def test_check_digit_needs_nine_digits(bad: str) -> None:
    with pytest.raises(ValueError, match="nine digits"):
        check_digit(bad)
