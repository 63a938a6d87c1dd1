"""Bad catalogs and bad usage get clear errors naming the file, the path and the fix."""

import subprocess
import sys
from pathlib import Path

import pytest

from ratecard.catalog import load_catalog
from ratecard.cli import main
from ratecard.errors import CatalogInvalid

HEAD = """currency: USD
meters:
  calls: {event: api.call, aggregation: count}
  tokens: {event: llm.request, aggregation: sum, property: input_tokens, group_by: [model]}
plans:
"""


def problems(tmp_path: Path, plans: str) -> list[str]:
    f = tmp_path / "catalog.yaml"
    f.write_text(HEAD + plans)
    with pytest.raises(CatalogInvalid) as e:
        load_catalog(f)
    return [str(p) for p in e.value.problems]


@pytest.mark.parametrize(("plans", "path", "message"), [
    ("  p:\n    charges:\n      - {meter: calls, model: tiered_magic, unit_price: 1}\n",
     "plans.p.charges[0]", "unknown price model 'tiered_magic'"),
    ("  p:\n    charges:\n      - meter: calls\n        model: graduated\n        tiers: "
     "[{up_to: 100, unit_price: 1}, {up_to: 50, unit_price: 2}, {up_to: null, unit_price: 3}]\n",
     "plans.p.charges[0]", "must be greater than the tier before"),
    ("  p:\n    charges:\n      - meter: calls\n        model: volume\n        tiers: "
     "[{up_to: 100, unit_price: 1}, {up_to: 500, unit_price: 2}]\n",
     "plans.p.charges[0]", "must be unbounded: set up_to: null"),
    ("  p:\n    charges:\n      - {meter: calls, model: per_unit, unit_price: 0.1}\n",
     "plans.p.charges[0].unit_price", "quote it as a string"),
    ("  p:\n    charges:\n      - {meter: nope, model: per_unit, unit_price: 1}\n",
     "plans.p.charges[0].meter", "no meter 'nope'"),
    ("  p:\n    base_fee: 10\n    colour: blue\n",
     "plans.p.colour", "unknown key"),
    ("  p:\n    charges:\n      - {meter: tokens, model: per_unit, prices_by: region, "
     "prices: {eu: {unit_price: 1}}}\n",
     "plans.p.charges[0].prices_by", "does not group by 'region'"),
    ("  p:\n    charges:\n      - {meter: calls, model: per_unit}\n",
     "plans.p.charges[0]", "needs unit_price"),
    ("  p:\n    charges:\n      - {meter: calls, model: per_unit, unit_price: '-1'}\n",
     "plans.p.charges[0]", "must not be negative"),
])
def test_catalog_problem_names_file_path_and_fix(
    tmp_path: Path, plans: str, path: str, message: str
) -> None:
    found = problems(tmp_path, plans)
    assert any(path in p and message in p and "catalog.yaml" in p for p in found), found


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, (
        "  a:\n    charges:\n      - {meter: calls, model: bogus}\n"
        "  b:\n    base_fee: 0.1\n"
        "  c:\n    interval: fortnight\n"))
    assert len(found) == 3
    assert any("plans.a" in p for p in found) and any("plans.b.base_fee" in p for p in found)
    assert any("plans.c.interval" in p for p in found)


def test_problem_names_the_line(tmp_path: Path) -> None:
    found = problems(tmp_path, "  p:\n    base_fee: 10\n    colour: blue\n")
    assert "line 8" in found[0]


def test_duplicate_keys_and_bad_yaml(tmp_path: Path) -> None:
    f = tmp_path / "dup.yaml"
    f.write_text("currency: USD\ncurrency: EUR\n")
    with pytest.raises(CatalogInvalid, match="appears twice"):
        load_catalog(f)
    f.write_text("plans: [unclosed\n")
    with pytest.raises(CatalogInvalid, match="not valid YAML"):
        load_catalog(f)


def test_exact_yaml_float_is_accepted(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(HEAD + "  p:\n    charges:\n      - {meter: calls, model: per_unit, "
                        "unit_price: 0.5}\n")
    assert str(load_catalog(f).plans["p"].charges[0].unit_price) == "0.5"


def test_folder_catalog_merges_and_refuses_duplicates(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(HEAD + "  p: {base_fee: 1}\n")
    (tmp_path / "b.yaml").write_text("plans:\n  q: {base_fee: 2}\n")
    assert sorted(load_catalog(tmp_path).plans) == ["p", "q"]
    (tmp_path / "c.yaml").write_text("plans:\n  q: {base_fee: 3}\n")
    with pytest.raises(CatalogInvalid, match="defined in two catalog files"):
        load_catalog(tmp_path)


# ------------------------------------------------------------------------- CLI exit codes

GOOD = HEAD + ("  p:\n    base_fee: 10\n    charges:\n      - {meter: calls, model: per_unit, "
               "unit_price: 2}\n      - {meter: tokens, model: per_unit, prices_by: model, "
               "prices: {a: {unit_price: 1}}}\n")


@pytest.fixture
def good(tmp_path: Path) -> Path:
    f = tmp_path / "good.yaml"
    f.write_text(GOOD)
    return f


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err + out.out


def test_validate_exit_codes(tmp_path: Path, good: Path,
                             capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["catalog", "validate", str(good)], capsys)[0] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  p:\n    charges:\n      - {meter: calls, model: bogus}\n")
    code, text = run(["catalog", "validate", str(good), str(bad)], capsys)
    assert code == 1 and "unknown price model 'bogus'" in text and "bad.yaml" in text


@pytest.mark.parametrize(("usage", "message"), [
    ('{"nope": 3}', "no meter 'nope'"),
    ('{"calls": -3}', "negative"),
    ('{"calls": "many"}', "not a number"),
    ('{"tokens": {"zzz": 5}}', "no price for model 'zzz' and no default"),
    ('{"calls": ', "not valid JSON"),
])
def test_quote_bad_usage(tmp_path: Path, good: Path, capsys: pytest.CaptureFixture[str],
                         usage: str, message: str) -> None:
    u = tmp_path / "usage.json"
    u.write_text(usage)
    code, text = run(["quote", str(good), "--plan", "p", "--usage", str(u)], capsys)
    assert code == 1 and message in text


def test_quote_unknown_plan(good: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    u = tmp_path / "usage.json"
    u.write_text("{}")
    code, text = run(["quote", str(good), "--plan", "gold", "--usage", str(u)], capsys)
    assert code == 3 and "no plan 'gold'" in text


def test_quote_events_bad_line_is_named(tmp_path: Path, good: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ev = tmp_path / "events.jsonl"
    ev.write_text('{"event_id": "e1", "type": "api.call", "customer": "c", '
                  '"timestamp": "2026-01-01T00:00:00Z", "properties": {}}\n{not json\n')
    code, text = run(["quote", str(good), "--plan", "p", "--events", str(ev)], capsys)
    assert code == 1 and "line 2" in text


def test_quote_from_events(tmp_path: Path, good: Path,
                           capsys: pytest.CaptureFixture[str]) -> None:
    lines = [
        f'{{"event_id": "e{i}", "type": "api.call", "customer": "c", '
        f'"timestamp": "2026-01-01T00:00:0{i}Z", "properties": {{}}}}' for i in range(3)
    ]
    lines.append('{"event_id": "t1", "type": "llm.request", "customer": "c", '
                 '"timestamp": "2026-01-01T00:00:05Z", '
                 '"properties": {"model": "a", "input_tokens": 7}}')
    ev = tmp_path / "events.jsonl"
    ev.write_text("\n".join(lines) + "\n")
    code, text = run(["quote", str(good), "--plan", "p", "--events", str(ev), "--json"],
                     capsys)
    assert code == 0 and '"total": "23.00"' in text  # 10 + 3 × 2 + 7 × 1


def test_console_script_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("plans: {p: {charges: [{meter: x, model: nope}]}}\n")
    exe = Path(sys.executable).parent / "ratecard"
    r = subprocess.run([str(exe), "quote", str(bad), "--plan", "p", "--usage", str(bad)],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr and "unknown price model 'nope'" in r.stderr


def test_control_characters_are_a_yaml_problem(tmp_path: Path) -> None:
    f = tmp_path / "ctl.yaml"
    f.write_text("currency: USD\x07\n")
    with pytest.raises(CatalogInvalid, match="not valid YAML"):
        load_catalog(f)


def test_absurd_quantity_is_refused(tmp_path: Path, good: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    u = tmp_path / "usage.json"
    u.write_text('{"calls": 1e999999999}')
    code, text = run(["quote", str(good), "--plan", "p", "--usage", str(u)], capsys)
    assert code == 1 and "out of range" in text
