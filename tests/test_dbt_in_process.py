"""trackway.orchestration.dbt_in_process: the same answers as the dbt-common and Cosmos code it replaces."""

import gc

from dbt_common import behavior_flags

from trackway.orchestration import dbt_in_process

FLAG = {"name": "a_flag", "default": False, "description": "a flag made by this test"}


def _rendered_source() -> str:
    return behavior_flags.BehaviorFlagRendered(FLAG, {})._behavior_change_event.flag_source


def test_a_flag_names_the_module_that_made_it_as_dbt_common_did():
    dbt_in_process.speed_up_in_process_dbt()
    original = dbt_in_process._APPLIED["flag_source"]
    replaced = vars(behavior_flags.BehaviorFlagRendered)["_default_source"]  # the staticmethod itself
    try:
        behavior_flags.BehaviorFlagRendered._default_source = staticmethod(original)
        theirs = _rendered_source()
    finally:
        behavior_flags.BehaviorFlagRendered._default_source = replaced
    assert theirs == __name__
    assert _rendered_source() == theirs


def test_after_cosmos_cleans_up_what_survived_is_frozen():
    from cosmos.dbt import runner

    dbt_in_process.speed_up_in_process_dbt()
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    runner._cleanup_dbt_adapters()
    assert gc.get_freeze_count() > 0
