"""PAMM rollover schedules: the accepted texts, the next due time strictly after a moment, in UTC."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from allocation.pamm import PammError
from allocation.pamm.schedule import Schedule, parse_schedule

UTC = timezone.utc


def t(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.mark.parametrize("text, canonical", [
    ("manual", "manual"), ("every 15m", "every 15m"), ("every 1h", "every 1h"), ("every 4h", "every 4h"),
    ("every 60m", "every 1h"), ("Every  30M", "every 30m"), ("every 24h", "every 24h"),
    ("daily 21:00", "daily 21:00"), ("daily 00:00", "daily 00:00"), ("weekly fri 21:00", "weekly fri 21:00"),
    ("WEEKLY Sun 23:59", "weekly sun 23:59"),
])
def test_accepted_texts_and_their_canonical_form(text, canonical):
    schedule = parse_schedule(text)
    assert schedule.text == canonical
    assert parse_schedule(schedule.text) == schedule


@pytest.mark.parametrize("text, message", [
    ("hourly", "is not one of"), ("", "is not one of"), ("every 7m", "must divide a day"),
    ("every 0m", "must divide a day"), ("every 5h", "must divide a day"), ("every 48h", "must divide a day"),
    ("daily 24:00", "not a time of day"), ("daily 9:00", "is not one of"), ("daily 21:60", "not a time of day"),
    ("weekly fry 21:00", "is not one of"), ("weekly fri", "is not one of"), ("every -1h", "is not one of"),
    (None, "must be text"),
])
def test_bad_texts_are_one_line_naming_the_text_and_the_forms(text, message):
    with pytest.raises(PammError) as info:
        parse_schedule(text)
    assert message in str(info.value) and "\n" not in str(info.value)
    if message == "is not one of":
        assert repr(text) in str(info.value) and "weekly fri HH:MM" in str(info.value)


def test_manual_is_never_due():
    assert parse_schedule("manual").next_after(t("2026-01-01T00:00:00+00:00")) is None


def test_every_is_aligned_to_multiples_of_the_interval_since_the_epoch():
    every4 = parse_schedule("every 4h")
    assert every4.next_after(t("2026-03-05T01:30:00+00:00")) == t("2026-03-05T04:00:00+00:00")
    # exactly on a boundary: the next one, never the same moment
    assert every4.next_after(t("2026-03-05T04:00:00+00:00")) == t("2026-03-05T08:00:00+00:00")
    assert every4.next_after(t("2026-03-05T03:59:59.999999+00:00")) == t("2026-03-05T04:00:00+00:00")
    assert every4.next_after(t("2026-03-05T22:00:00+00:00")) == t("2026-03-06T00:00:00+00:00")
    every15 = parse_schedule("every 15m")
    assert every15.next_after(t("2026-03-05T10:44:59+00:00")) == t("2026-03-05T10:45:00+00:00")
    assert every15.next_after(t("2026-03-05T10:45:00+00:00")) == t("2026-03-05T11:00:00+00:00")


def test_offsets_are_converted_to_utc_and_the_answer_is_utc():
    # 23:30 at UTC+2 is 21:30 UTC: the next 'daily 21:00' is tomorrow 21:00 UTC
    due = parse_schedule("daily 21:00").next_after(t("2026-06-10T23:30:00+02:00"))
    assert due == t("2026-06-11T21:00:00+00:00") and due.utcoffset() == timedelta(0)
    hourly = parse_schedule("every 1h").next_after(t("2026-06-10T10:10:00+05:30"))
    assert hourly == t("2026-06-10T05:00:00+00:00")


def test_daily_before_at_and_after_the_time():
    daily = parse_schedule("daily 21:00")
    assert daily.next_after(t("2026-01-31T20:59:00+00:00")) == t("2026-01-31T21:00:00+00:00")
    assert daily.next_after(t("2026-01-31T21:00:00+00:00")) == t("2026-02-01T21:00:00+00:00")
    assert daily.next_after(t("2026-12-31T21:00:01+00:00")) == t("2027-01-01T21:00:00+00:00")


def test_weekly_wraps_over_the_week_end():
    friday = parse_schedule("weekly fri 21:00")
    # 2026-01-02 is a Friday
    assert friday.next_after(t("2026-01-02T20:00:00+00:00")) == t("2026-01-02T21:00:00+00:00")
    assert friday.next_after(t("2026-01-02T21:00:00+00:00")) == t("2026-01-09T21:00:00+00:00")
    assert friday.next_after(t("2026-01-03T09:00:00+00:00")) == t("2026-01-09T21:00:00+00:00")  # Saturday
    assert friday.next_after(t("2025-12-29T00:00:00+00:00")) == t("2026-01-02T21:00:00+00:00")  # Monday
    monday = parse_schedule("weekly mon 00:00")
    assert monday.next_after(t("2026-01-04T23:59:59+00:00")) == t("2026-01-05T00:00:00+00:00")  # Sunday night


def test_dst_does_not_move_a_utc_schedule():
    daily = parse_schedule("daily 01:00")
    # the night Europe changes to summer time (2026-03-29): still 01:00 UTC, 24 hours apart
    first = daily.next_after(t("2026-03-28T02:00:00+00:00"))
    second = daily.next_after(first)
    assert first == t("2026-03-29T01:00:00+00:00") and second - first == timedelta(hours=24)


def test_every_due_time_is_strictly_after_and_on_the_grid():
    every = parse_schedule("every 30m")
    moment = t("2026-05-01T00:00:00+00:00")
    for _ in range(100):
        due = every.next_after(moment)
        assert moment < due <= moment + timedelta(minutes=30)
        assert due.minute in (0, 30) and due.second == 0 and due.microsecond == 0
        moment += timedelta(minutes=13)


def test_naive_times_are_refused():
    with pytest.raises(PammError, match="timezone-aware"):
        parse_schedule("every 1h").next_after(datetime(2026, 1, 1))
    assert isinstance(parse_schedule("manual"), Schedule)
