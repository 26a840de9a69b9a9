"""The Submit form in Chromium: inputs typed from the signature, checked as they are typed, empty
optional fields left out, required ones enforced, JSON never split on its commas, the options."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from taskq.client import Client
from tests.helpers import WorkerFactory, wait_for
from tests.ui.conftest import Ui, UiFactory

TASKS = ["--tasks", "tests.ui.ui_tasks"]


@pytest.fixture
def form(ui: UiFactory, start_worker: WorkerFactory) -> Ui:
    from playwright.sync_api import expect

    start_worker("worker1", extra=TASKS)
    u = ui()
    u.go("#/submit")
    expect(u.page.locator("#task-type option[value=typed]")).to_have_count(1)
    return u


def posted(u: Ui) -> list[dict[str, Any]]:
    """The bodies the page POSTed to /api/tasks."""
    return [json.loads(b) for b in u.page.evaluate("window.__posted || []")]


def record_posts(u: Ui) -> None:
    u.page.evaluate("""() => {
      window.__posted = [];
      const real = window.fetch;
      window.fetch = (url, opts = {}) => {
        if (url === '/api/tasks' && opts.method === 'POST') window.__posted.push(opts.body);
        return real(url, opts);
      };
    }""")


def test_a_typed_signature_gives_typed_inputs_and_sends_typed_values(form: Ui, client: Client) -> None:
    from playwright.sync_api import expect

    pg = form.page
    record_posts(form)
    pg.select_option("#task-type", "typed")
    sig = pg.locator("#task-signature").inner_text()
    assert sig.startswith('typed(n: int, x: float, flag: bool, items: list[int], opts: dict[str, Any], '
                          'label: str = "none", *, ')
    assert "'int'" not in sig and "\"Literal" not in sig and sig.endswith("**extra: Any) -> dict[str, Any]")
    # A number field refuses text, inline, as it is typed.
    pg.get_by_label("n", exact=True).fill("abc")
    expect(pg.locator("#arg-n-error")).to_have_text('n must be a whole number, not "abc"')
    expect(pg.get_by_label("n", exact=True)).to_have_attribute("aria-invalid", "true")
    pg.get_by_label("n", exact=True).fill("1.5")
    expect(pg.locator("#arg-n-error")).to_have_text("n must be a whole number, not 1.5")
    pg.get_by_label("n", exact=True).fill("3")
    expect(pg.locator("#arg-n-error")).to_be_hidden()
    pg.get_by_label("x", exact=True).fill("1.5")
    pg.get_by_label("flag", exact=True).select_option("true")
    pg.get_by_label("items", exact=True).fill('{"a": 1}')
    expect(pg.locator("#arg-items-error")).to_contain_text("must be a JSON list")
    pg.get_by_label("items", exact=True).fill("[1, 2")
    expect(pg.locator("#arg-items-error")).to_contain_text("is not valid JSON")
    pg.get_by_label("items", exact=True).fill("[1, 2]")
    pg.get_by_label("opts", exact=True).fill('{"a": 1, "b": [1,2]}')
    pg.get_by_label("mode", exact=True).select_option(label='"slow"')
    pg.get_by_label("**extra", exact=True).fill('{"z": 1}')
    # label and scale stay empty: left out, so their defaults apply.
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=status]")).to_have_text("success")
    assert posted(form) == [{"task": "typed", "args": [3, 1.5, True, [1, 2], {"a": 1, "b": [1, 2]}],
                             "kwargs": {"mode": "slow", "z": 1}}]
    tid = pg.locator("#submitted [data-field=id]").inner_text()
    result = client.get(tid).result
    assert result["n"] == [3, "int"] and result["x"] == [1.5, "float"] and result["flag"] == [True, "bool"]
    assert result["label"] == ["none", "str"] and result["scale"] == [None, "NoneType"]
    assert result["opts"] == [{"a": 1, "b": [1, 2]}, "dict"] and result["extra"] == [{"z": 1}, "dict"]


def test_required_fields_are_enforced_and_nothing_is_sent(form: Ui) -> None:
    from playwright.sync_api import expect

    pg = form.page
    record_posts(form)
    pg.select_option("#task-type", "typed")
    pg.get_by_label("x", exact=True).fill("2")
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#arg-n-error")).to_have_text("n is required")
    expect(pg.locator("#arg-flag-error")).to_have_text("flag is required")
    expect(pg.locator("#submit-result")).to_contain_text("Fix the fields marked above")
    assert pg.evaluate("document.activeElement.id") == "arg-n"
    assert posted(form) == []


def test_a_json_object_for_star_args_is_one_argument_never_split_on_commas(form: Ui, client: Client) -> None:
    from playwright.sync_api import expect

    pg = form.page
    record_posts(form)
    pg.select_option("#task-type", "echo")
    box = pg.get_by_label("*args", exact=True)
    box.fill('{"a": 1, "b": [1,2]}')
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=result]")).to_have_text('[{"a":1,"b":[1,2]}]')
    box.fill("1, 2, hello")
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=result]")).to_have_text('[1,2,"hello"]')
    box.fill('[1, "two", {"three": 3}]')
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=result]")).to_have_text('[1,"two",{"three":3}]')
    box.fill('{"a": 1, "b"')
    expect(pg.locator("#arg-args-error")).to_contain_text("is not valid JSON")
    assert [b["args"] for b in posted(form)] == [[{"a": 1, "b": [1, 2]}], [1, 2, "hello"], [1, "two", {"three": 3}]]


def test_empty_optional_fields_are_left_out_and_later_ones_go_by_keyword(form: Ui) -> None:
    from playwright.sync_api import expect

    pg = form.page
    record_posts(form)
    pg.select_option("#task-type", "fail")  # fail(message: str = 'failed on purpose')
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=status]")).to_have_text("failed")
    expect(pg.locator("#submitted [data-field=result]")).to_contain_text("failed on purpose")

    pg.select_option("#task-type", "pos_only")  # pos_only(a: int, b: int = 2, /, c: int = 3)
    pg.get_by_label("a", exact=True).fill("1")
    pg.get_by_label("c", exact=True).fill("9")
    pg.get_by_role("button", name="Submit").click()  # b left out: c goes by keyword
    expect(pg.locator("#submitted [data-field=result]")).to_have_text("[1,2,9]")
    assert posted(form)[0] == {"task": "fail", "args": []}
    assert posted(form)[1] == {"task": "pos_only", "args": [1], "kwargs": {"c": 9}}


def test_the_options_are_checked_and_sent(form: Ui, client: Client) -> None:
    from playwright.sync_api import expect

    pg = form.page
    record_posts(form)
    pg.select_option("#task-type", "add")
    pg.get_by_label("a", exact=True).fill("1")
    pg.get_by_label("b", exact=True).fill("2")
    pg.locator("#options summary").click()
    pg.get_by_label("Max retries").fill("abc")
    expect(pg.locator("#opt-retries-error")).to_contain_text("must be a whole number")
    pg.get_by_label("Max retries").fill("5000")
    expect(pg.locator("#opt-retries-error")).to_have_text("must be from 0 to 1000")
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submit-result")).to_contain_text("Fix the fields")
    pg.get_by_label("Max retries").fill("2")
    pg.get_by_label("Time limit (seconds)").fill("30")
    pg.get_by_label("Delay", exact=True).fill("2")
    pg.get_by_label("Delay unit").select_option(label="minutes")
    pg.get_by_label("Idempotency key").fill("ui-key-1")
    pg.get_by_label("Ordering key").fill("customer-7")
    before = time.time()
    pg.get_by_role("button", name="Submit").click()
    expect(pg.locator("#submitted [data-field=status]")).to_have_text("queued")
    tid = pg.locator("#submitted [data-field=id]").inner_text()
    assert posted(form) == [{"task": "add", "args": [1, 2], "max_retries": 2, "timeout": 30, "delay": 120,
                             "idempotency_key": "ui-key-1", "key": "customer-7"}]
    rec = client.get(tid)
    assert rec.max_retries == 2 and rec.timeout == 30 and rec.eta is not None and before + 119 < rec.eta < before + 130
    # The same idempotency key returns the same task.
    pg.get_by_role("button", name="Submit").click()
    wait_for(lambda: len(posted(form)) == 2, timeout=10, what="the second submit")
    expect(pg.locator("#submitted [data-field=id]")).to_have_text(tid)
    # The task page says when it is due.
    pg.locator("#submitted [data-field=id]").click()
    expect(pg.locator("#task-page [data-field=due]")).to_contain_text("in 1 min")


def test_the_form_rules_themselves(form: Ui) -> None:
    """The pure functions of ui/form.js, on annotations the workers advertise."""
    kinds = form.page.evaluate("""async () => {
      const f = await import('/ui/form.js');
      const k = (t) => { const r = f.fieldKind(t); return r.kind + (r.nullable ? '?' : ''); };
      return {
        int: k('int'), opt: k('Optional[int]'), union: k('int | None'), str_or_int: k('str | int'),
        lst: k('list[dict[str, int]]'), tup: k('tuple[int, int]'), dct: k('dict[str, list[int]]'),
        mapping: k('Mapping[str, Any]'), any: k('Any'), none: k(null), lit: k("Literal['a', 'b']"),
        bool: k('bool'), seq: k('collections.abc.Sequence[int]'),
        exp: f.parseField('float', '1e3').value, neg: f.parseField('int', '-4').value,
        nan: f.parseField('float', 'NaN').error, inf: f.parseField('float', 'Infinity').error,
        plain: f.parseField('json', 'hello').value, jsonnum: f.parseField('json', '12').value,
        emptystr: f.parseField('str', '""').value, spaces: f.parseField('str', '  a ').value,
      };
    }""")
    assert kinds == {
        "int": "int", "opt": "int?", "union": "int?", "str_or_int": "json", "lst": "list", "tup": "list",
        "dct": "object", "mapping": "object", "any": "json", "none": "json", "lit": "choice", "bool": "bool",
        "seq": "list", "exp": 1000, "neg": -4, "nan": 'must be a number, not "NaN"',
        "inf": 'must be a number, not "Infinity"', "plain": "hello", "jsonnum": 12, "emptystr": "", "spaces": "  a ",
    }
