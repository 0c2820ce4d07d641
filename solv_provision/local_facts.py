"""Local facts the roles leave on a host (/etc/ansible/facts.d) and take back from a run's fact gathering
(ansible_local) instead of a remote call of their own: only a reading this recent counts, as a fact cache may hold
an older one."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

FACT_MAX_AGE = 300  # seconds


def read_recently(when: Any) -> bool:
    """Whether WHEN (seconds since the epoch, a number or its string as ansible_date_time.epoch has it) is within
    FACT_MAX_AGE of now."""
    try:
        return abs(time.time() - float(when)) < FACT_MAX_AGE
    except (TypeError, ValueError):
        return False


def fact_as_wanted(fact: Any, wanted: Mapping, date_time: Any) -> bool:
    """Whether FACT (ansible_local.<name>) is WANTED, read by a fact gathering whose ansible_date_time is DATE_TIME
    within FACT_MAX_AGE."""
    return (isinstance(fact, Mapping) and dict(fact) == dict(wanted) and isinstance(date_time, Mapping)
            and read_recently(date_time.get("epoch")))
