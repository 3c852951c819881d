"""Rotas: the sessions a clinician works at a site, week by week, from which slots are made.

A rota lives on the Schedule it fills (one Schedule per clinician and site: actor
PractitionerRole + Location [+ HealthcareService], as GP Connect and the synthetic practice
shape them), one OpenGP complex extension per session. R4 has no resource for a recurring
session: Schedule "does not define recurrence", and HealthcareService.availableTime has days
and times but not slot length, slot type or channel, and belongs to a service rather than a
clinician's book. The recurrence itself is R4's own Timing datatype (days of the week, time
of day, duration, bounds), so only the slot-making details are OpenGP's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

from opengp.fhir.errors import Unprocessable
from opengp.services.appointments.codes import SESSION_URL, concept_of, key_of

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # R4 days-of-week, by weekday()
MAX_ONLINE_DAYS = 366


@dataclass(frozen=True, slots=True)
class Session:
    """One weekly session: slots of `slot_minutes` from `start` until `end` on `days`."""

    days: tuple[str, ...]  # of DAYS
    start: time
    end: time
    slot_minutes: int
    slot_type: str  # practice-defined slot type: Slot.serviceType.text
    category: str  # National Slot Type Category key, e.g. "slot_general_consultation_routine"
    channel: str  # delivery channel key: channel_in_person | channel_telephone | channel_video
    online_days_ahead: int | None = None  # opens to online booking this many days ahead
    name: str = ""  # e.g. "GP surgery"
    valid_from: date | None = None
    valid_until: date | None = None  # the last day it runs

    def problems(self) -> list[str]:
        found = []
        if not self.days or any(d not in DAYS for d in self.days):
            found.append(f"days must be some of {', '.join(DAYS)}")
        if not 5 <= self.slot_minutes <= 240:
            found.append("slot length must be 5 to 240 minutes")
        if self.end <= self.start:
            found.append("a session must end after it starts")
        elif _minutes(self.end) - _minutes(self.start) < self.slot_minutes:
            found.append("a session must hold at least one slot")
        if not self.slot_type.strip() or len(self.slot_type) > 100:
            found.append("the slot type is 1 to 100 characters")
        for kind, key in (("slot-category", self.category), ("delivery-channel", self.channel)):
            try:
                concept_of(kind, key)
            except ValueError as exc:
                found.append(str(exc))
        if (
            self.online_days_ahead is not None
            and not 0 <= self.online_days_ahead <= MAX_ONLINE_DAYS
        ):
            found.append(f"online booking opens 0 to {MAX_ONLINE_DAYS} days ahead")
        if self.valid_from and self.valid_until and self.valid_until < self.valid_from:
            found.append("a session cannot end before it begins")
        return found

    def runs_on(self, day: date) -> bool:
        if self.valid_from is not None and day < self.valid_from:
            return False
        if self.valid_until is not None and day > self.valid_until:
            return False
        return DAYS[day.weekday()] in self.days

    def slot_times(self) -> list[tuple[time, time]]:
        first, last = _minutes(self.start), _minutes(self.end)
        starts = range(first, last - self.slot_minutes + 1, self.slot_minutes)
        return [(_time(m), _time(m + self.slot_minutes)) for m in starts]


def check_rota(sessions: list[Session]) -> None:
    """Unprocessable naming each session that is wrong or overlaps another."""
    problems = [f"session {i + 1}: {p}" for i, s in enumerate(sessions) for p in s.problems()]
    for i, a in enumerate(sessions):
        for j in range(i + 1, len(sessions)):
            if _overlap(a, sessions[j]):
                problems.append(f"sessions {i + 1} and {j + 1} overlap")
    if problems:
        raise Unprocessable("; ".join(problems), expression=["Schedule.extension"])


def _overlap(a: Session, b: Session) -> bool:
    if not set(a.days) & set(b.days) or a.end <= b.start or b.end <= a.start:
        return False
    a_from, b_from = a.valid_from or date.min, b.valid_from or date.min
    a_until, b_until = a.valid_until or date.max, b.valid_until or date.max
    return a_from <= b_until and b_from <= a_until


def to_extension(session: Session) -> dict[str, Any]:
    repeat: dict[str, Any] = {
        "dayOfWeek": list(session.days),
        "timeOfDay": [session.start.isoformat(timespec="seconds")],
        "duration": _minutes(session.end) - _minutes(session.start),
        "durationUnit": "min",
    }
    if session.valid_from or session.valid_until:
        bounds = {"start": session.valid_from, "end": session.valid_until}
        repeat["boundsPeriod"] = {k: v.isoformat() for k, v in bounds.items() if v}
    parts: list[dict[str, Any]] = [{"url": "name", "valueString": session.name}] * bool(
        session.name
    )
    parts += [
        {"url": "when", "valueTiming": {"repeat": repeat}},
        {"url": "slotMinutes", "valuePositiveInt": session.slot_minutes},
        {"url": "slotType", "valueString": session.slot_type},
        {"url": "category", "valueCoding": concept_of("slot-category", session.category).coding()},
        {
            "url": "deliveryChannel",
            "valueCoding": concept_of("delivery-channel", session.channel).coding(),
        },
    ]
    if session.online_days_ahead is not None:
        parts.append({"url": "onlineDaysAhead", "valueUnsignedInt": session.online_days_ahead})
    return {"url": SESSION_URL, "extension": parts}


def sessions_of(schedule: dict[str, Any]) -> list[Session]:
    return [
        from_extension(e) for e in schedule.get("extension") or () if e.get("url") == SESSION_URL
    ]


def from_extension(extension: dict[str, Any]) -> Session:
    parts = {p.get("url"): p for p in extension.get("extension") or ()}
    repeat = parts["when"]["valueTiming"]["repeat"]
    start = time.fromisoformat(repeat["timeOfDay"][0])
    bounds = repeat.get("boundsPeriod") or {}
    online = parts.get("onlineDaysAhead")
    return Session(
        days=tuple(repeat["dayOfWeek"]),
        start=start,
        end=_time(_minutes(start) + int(repeat["duration"])),
        slot_minutes=int(parts["slotMinutes"]["valuePositiveInt"]),
        slot_type=str(parts["slotType"]["valueString"]),
        category=key_of("slot-category", parts["category"]["valueCoding"]) or "",
        channel=key_of("delivery-channel", parts["deliveryChannel"]["valueCoding"]) or "",
        online_days_ahead=None if online is None else int(online["valueUnsignedInt"]),
        name=str(parts.get("name", {}).get("valueString", "")),
        valid_from=_date(bounds.get("start")),
        valid_until=_date(bounds.get("end")),
    )


def with_sessions(schedule: dict[str, Any], sessions: list[Session]) -> dict[str, Any]:
    """The Schedule with its rota replaced, and every slot type it offers in serviceType."""
    others = [e for e in schedule.get("extension") or () if e.get("url") != SESSION_URL]
    extensions = others + [to_extension(s) for s in sessions]
    offered = [t.get("text") for t in schedule.get("serviceType") or () if t.get("text")]
    offered += [s.slot_type for s in sessions if s.slot_type not in offered]
    changed = {k: v for k, v in schedule.items() if k not in ("extension", "serviceType")}
    if extensions:
        changed["extension"] = extensions
    if offered:
        changed["serviceType"] = [{"text": text} for text in offered]
    return changed


def _minutes(value: time) -> int:
    return value.hour * 60 + value.minute


def _time(minutes: int) -> time:
    if minutes >= 24 * 60:
        raise Unprocessable("a session must end by midnight", expression=["Schedule.extension"])
    return time(minutes // 60, minutes % 60)


def _date(value: Any) -> date | None:
    return date.fromisoformat(value[:10]) if isinstance(value, str) else None


def window(first: date, weeks: int) -> list[date]:
    return [first + timedelta(days=i) for i in range(weeks * 7)]
