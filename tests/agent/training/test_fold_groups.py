"""Near-duplicate programs share a fold group, and groups are dealt so that every fold holds
both labels and no fold is mostly one label's largest group."""

from __future__ import annotations

from agent.training.groups import NEAR_DUPLICATES, deal, group_of


def test_a_program_outside_every_set_is_its_own_group() -> None:
    assert group_of("sleep") == "sleep"
    assert group_of("llama-renamed-binary") == group_of("node-llama-cpp-idle")


def test_no_program_belongs_to_two_sets_and_every_set_says_why() -> None:
    seen: list[str] = []
    for programs, reason in NEAR_DUPLICATES.values():
        assert reason and len(programs) >= 2
        seen += programs
    assert len(seen) == len(set(seen))


def test_every_fold_gets_both_labels_when_there_are_enough_groups() -> None:
    groups = [f"i{n}" for n in range(5) for _ in range(n + 1)]
    groups += [f"o{n}" for n in range(7) for _ in range(3)]
    labels = [1 if g.startswith("i") else 0 for g in groups]

    dealt = deal(groups, labels, 5)

    assert {dealt[f"i{n}"] for n in range(5)} == set(range(5))
    assert {dealt[f"o{n}"] for n in range(7)} == set(range(5))


def test_the_largest_groups_go_to_different_folds_and_dealing_is_stable() -> None:
    groups = ["big"] * 10 + ["large"] * 8 + ["small"] * 1 + ["tiny"] * 1
    labels = [0] * len(groups)

    dealt = deal(groups, labels, 2)

    assert dealt["big"] != dealt["large"]
    assert dealt == deal(list(reversed(groups)), labels, 2)
