"""First-order (and order-0) questions are byte-identical to main before the higher-order sub-inference: the
same likelihood requests in the same order and the same trace, with the belief-of-state option on (its
default). The golden file was written from main (11759b2); see first_order_golden.py. The only default that
changed first-order answers on purpose are the prune and carry rules (inference.prune_keep) and the discovery's
search rule and the persistence rule, so these runs pin the old ones ("absolute", "eager", "v2",
"nothing-observed"); test_prune_rule.py, test_discovery.py and test_persistence.py guard the new ones. Issue 28's
rules (no choice filter, own acts fed to the belief) changed hitom-00001, hitom-00021 and muma_tom-00004 on purpose,
so the runs also pin the rule set before it (rules.LEGACY_RULES); test_rules.py guards the new ones."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thoughttrace.tom.rules import LEGACY_RULES

from .first_order_golden import GOLDEN, run_all


@pytest.mark.parametrize("belief_of_state", [True, False])
async def test_first_order_traces_and_requests_are_unchanged(tom_dir: Path, belief_of_state: bool) -> None:
    golden = json.loads(GOLDEN.read_text())["scenarios"]
    now = await run_all(tom_dir, {"belief_of_state": belief_of_state, "prune_rule": "absolute", "carry_rule": "eager",
                         "discovery_rule": "v2", "persistence": "nothing-observed",
                                  "belief_transition": "asked", "rules": LEGACY_RULES})
    assert set(now) == set(golden)
    for name, want in golden.items():
        assert now[name] == want, name
