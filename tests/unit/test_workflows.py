"""Workflow descriptions: the builders, the JSON form, flattening and its bounds (no services)."""

from __future__ import annotations

import orjson
import pytest

from taskq import InvalidTask, chain, chord, group, sig
from taskq.workflows import MAX_NODES, Chain, Group, Sig, WorkflowRecord, flatten, from_json, to_json


def test_chord_is_a_chain_of_a_group_and_its_callback() -> None:
    c = chord([sig("add", 1, 2), "echo"], sig("tsum"), on_failure="skip")
    assert c == Chain((Group((Sig("add", (1, 2)), Sig("echo")), "skip"), Sig("tsum")))


def test_flatten_numbers_nodes_depth_first_from_one_with_parents_and_children() -> None:
    flat = flatten(chain(sig("a", 1), group(sig("b"), chain("c", sig("d", _immutable=True))), "e"))
    spec = orjson.loads(flat.spec)
    assert [n["k"] for n in spec] == ["c", "t", "g", "t", "c", "t", "t", "t"]
    assert spec[0] == {"p": 0, "k": "c", "c": [2, 3, 8]}
    assert spec[2] == {"p": 1, "k": "g", "f": "fail", "c": [4, 5]}
    assert spec[6] == {"p": 5, "k": "t", "t": "d", "i": True}
    assert flat.leaves[0] == (2, "[1]", "{}")
    assert flat.tasks == ["a", "b", "c", "d", "e"]


def test_task_options_reach_the_spec_as_strings_the_scripts_store_as_they_are() -> None:
    spec = orjson.loads(flatten(sig("add", 1, 2, _max_retries=3, _timeout=2)).spec)
    assert spec == [{"p": 0, "k": "t", "t": "add", "r": "3", "o": "2.0"}]


def test_json_form_round_trips_through_the_builders() -> None:
    wf = chain(sig("add", 1, 2, _max_retries=1), chord([sig("add", 3), sig("add", 4)], sig("echo", _immutable=True)))
    assert from_json(to_json(wf)) == wf
    assert from_json({"chord": ["add", {"task": "add", "args": [1]}], "callback": "echo", "on_failure": "run"}) == \
        chord(["add", sig("add", 1)], "echo", on_failure="run")


@pytest.mark.parametrize(("data", "says"), [
    ({"chain": [], "group": []}, "exactly one of"),
    ({"nope": 1}, "exactly one of"),
    ([1, 2], "expected an object"),
    ({"task": "add", "args": {"a": 1}}, "workflow.args must be a list"),
    ({"task": "add", "colour": "red"}, "unknown field(s) colour"),
    ({"group": ["add"], "on_failure": "ignore"}, "on_failure must be one of fail, skip, run"),
    ({"chord": ["add"]}, "a chord needs a callback"),
    ({"chain": [{"task": "add", "immutable": "yes"}]}, "workflow.chain[0].immutable must be true or false"),
    ({"chain": "add"}, "workflow.chain must be a list"),
])
def test_malformed_json_is_refused_saying_where(data: object, says: str) -> None:
    with pytest.raises(InvalidTask, match=None) as err:
        flatten(from_json(data))
    assert says in str(err.value)


@pytest.mark.parametrize(("wf", "says"), [
    (chain(), "a chain needs at least one step"),
    (chain("add", group()), "workflow.chain[1]: a group needs at least one step"),
    (sig("no spaces"), "task name 'no spaces' is invalid"),
    (sig("add", float("nan")), "workflow.args"),
    (sig("add", 2**70), "workflow.args"),
    (sig("add", _max_retries=-1), "max_retries must be"),
    (sig("add", _timeout=0), "timeout must be"),
    (group("add", on_failure="maybe"), "on_failure must be one of"),  # type: ignore[arg-type]
])
def test_out_of_bounds_workflows_are_refused_before_anything_is_stored(wf: Chain, says: str) -> None:
    with pytest.raises(InvalidTask) as err:
        flatten(wf)
    assert says in str(err.value)


def test_a_workflow_has_at_most_max_nodes() -> None:
    flatten(group(*["add"] * (MAX_NODES - 1)))
    with pytest.raises(InvalidTask, match=f"at most {MAX_NODES}"):
        flatten(group(*["add"] * MAX_NODES))


def test_nesting_is_bounded() -> None:
    wf: Chain | Sig = sig("add")
    for _ in range(40):
        wf = chain(wf)
    with pytest.raises(InvalidTask, match="nested deeper"):
        flatten(wf)


def test_a_step_must_be_a_workflow_node_or_a_task_name() -> None:
    with pytest.raises(InvalidTask, match="a workflow step must be"):
        chain(42)  # type: ignore[arg-type]


def test_record_tells_each_node_state_result_and_task_id() -> None:
    flat = flatten(chord([sig("add", 1, 1), sig("fail")], "echo", on_failure="run"))
    h = {"id": "w", "spec": flat.spec, "status": "running", "created_at": "1.5",
         "s1": "running", "s2": "running", "s3": "success", "v3": "2", "s4": "failed", "v4": "boom"}
    rec = WorkflowRecord.from_hash(h)
    assert not rec.done
    assert [(n.index, n.kind, n.state) for n in rec.nodes] == [
        (1, "chain", "running"), (2, "group", "running"), (3, "task", "success"), (4, "task", "failed"),
        (5, "task", None)]
    assert rec.nodes[2].task_id == "w-3" and rec.nodes[2].result == 2
    assert rec.nodes[3].error == "boom"
    assert rec.nodes[4].task_id is None  # not started
    assert rec.nodes[1].on_failure == "run" and rec.nodes[1].children == [3, 4]
