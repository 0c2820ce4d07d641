"""A local fact taken from a run's fact gathering instead of a remote call (solv_provision.local_facts): only as
wanted, and only read within FACT_MAX_AGE (a fact cache may hold an older reading)."""

from __future__ import annotations

import time

from solv_provision import local_facts

WANTED = {"gpu_runtime": "cdi", "nvidia_driver_branch": 580, "nvidia_driver_gpu_count": 8,
          "nvidia_driver_reboot_pending": False, "nvidia_driver_version": "580.95.05"}


def _gathered(seconds_ago):
    return {"epoch": str(int(time.time() - seconds_ago))}  # as ansible_date_time has it: a string


def test_the_gpu_facts_as_wanted_and_just_gathered_need_no_write():
    assert local_facts.fact_as_wanted(dict(WANTED), WANTED, _gathered(2))


def test_other_facts_none_or_an_old_reading_are_written_again():
    assert not local_facts.fact_as_wanted({**WANTED, "gpu_runtime": "gpus"}, WANTED, _gathered(2))
    assert not local_facts.fact_as_wanted(None, WANTED, _gathered(2))
    assert not local_facts.fact_as_wanted(dict(WANTED), WANTED, _gathered(local_facts.FACT_MAX_AGE + 60))
    assert not local_facts.fact_as_wanted(dict(WANTED), WANTED, None)
    assert not local_facts.fact_as_wanted(dict(WANTED), WANTED, {"epoch": "not a time"})
