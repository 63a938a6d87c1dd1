"""``ratecard costs import|show|quote`` end to end, on real workspace files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ratecard.cli import main

LITELLM = {
    "claude-y": {"litellm_provider": "anthropic", "mode": "chat",
                 "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                 "cache_read_input_token_cost": 3e-07,
                 "cache_creation_input_token_cost": 3.75e-06,
                 "input_cost_per_token_above_200k_tokens": 6e-06,
                 "output_cost_per_token_above_200k_tokens": 2.25e-05},
    "image-model": {"litellm_provider": "x", "mode": "image_generation",
                    "output_cost_per_image": 0.04},
}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    f = tmp_path / "prices.json"
    f.write_text(json.dumps(LITELLM))
    w = tmp_path / "ws"
    code, out, err = run(["costs", "import", str(f), "--workspace", str(w), "--json"], capsys)
    assert code == 0, err
    summary = json.loads(out)
    assert summary["format"] == "litellm" and summary["models"] == 1
    assert summary["skipped"] == [{"model": "image-model",
                                   "reason": "no per-token input price (image_generation)"}]
    assert (w / "pricebook.json").exists()
    return w


def test_quote_json_is_exact(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    usage = json.dumps({"input_tokens": 1000, "cache_read_input_tokens": 50_000,
                        "output_tokens": 2000})
    code, out, _ = run(["costs", "quote", "--model", "claude-y", "--usage", usage,
                        "--workspace", str(ws), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["model"] == "claude-y"
    assert doc["cost"] == "0.048"  # 1,000 × 3 + 50,000 × 0.3 + 2,000 × 15 per million
    assert [ln["kind"] for ln in doc["breakdown"]["lines"]] == ["input", "cache_read", "output"]
    assert doc["breakdown"]["lines"][1]["usd_per_million"] == "0.3"


def test_quote_batch_and_long_context(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 200,001 prompt tokens in batch: 200,001 × 6/M / 2 = 0.600003; 10 output × 22.5/M / 2
    usage = json.dumps({"prompt_tokens": 200_001, "completion_tokens": 10})
    code, out, _ = run(["costs", "quote", "--model", "claude-y", "--usage", usage, "--batch",
                        "--workspace", str(ws), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["cost"] == "0.6001155"
    assert doc["breakdown"]["long_context_above"] == 200_000
    assert doc["breakdown"]["batch"] is True
    assert len(doc["breakdown"]["defaults"]) == 2


def test_quote_text_and_usage_file(ws: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    u = tmp_path / "usage.json"
    u.write_text('{"input_tokens": 1000000}')
    code, out, _ = run(["costs", "quote", "--model", "claude-y", "--usage", f"@{u}",
                        "--workspace", str(ws)], capsys)
    assert code == 0
    assert "total" in out and "3" in out


def test_unknown_model_is_one_line_with_suggestions(ws: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["costs", "quote", "--model", "claude-z", "--usage",
                          '{"input_tokens": 1}', "--workspace", str(ws)], capsys)
    assert code == 3
    assert err.strip().count("\n") == 0
    assert "unpriced" in err and "claude-y" in err and "Traceback" not in err


def test_bad_usage_is_one_line(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["costs", "quote", "--model", "claude-y", "--usage", "{oops",
                        "--workspace", str(ws)], capsys)
    assert code == 1 and "not valid JSON" in err
    code, _, err = run(["costs", "quote", "--model", "claude-y", "--usage",
                        '{"prompt_tokens": 5, "cache_read_tokens": 1}', "--workspace", str(ws)],
                       capsys)
    assert code == 1 and "mixes" in err


def test_show_lists_versions_and_defaults(ws: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["costs", "show", "claude-y", "--workspace", str(ws), "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    (v,) = doc["versions"]
    assert v["in_force"] is True and v["long_context_thresholds"] == [200_000]
    base = v["prices"]["base"]
    assert base["input"]["usd_per_million"] == "3"
    assert base["batch_input"]["usd_per_million"] == "1.5"
    assert base["batch_input"]["default"].startswith("input: no batch price")
    assert v["prices"]["above 200000"]["output"]["usd_per_million"] == "22.5"
    code, out, _ = run(["costs", "show", "claude-y", "--workspace", str(ws)], capsys)
    assert code == 0 and "default:" in out


def test_import_with_valid_from_keeps_earlier_prices(ws: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cheaper = tmp_path / "march.yaml"
    cheaper.write_text("models:\n  claude-y: {input: '1', output: '5'}\n")
    code, _, err = run(["costs", "import", str(cheaper), "--valid-from", "2026-03-15",
                        "--workspace", str(ws)], capsys)
    assert code == 0, err
    usage = '{"input_tokens": 100000}'
    costs = []
    for at in ("2026-03-14T23:59:59Z", "2026-03-15T00:00:00Z"):
        code, out, _ = run(["costs", "quote", "--model", "claude-y", "--usage", usage, "--at",
                            at, "--workspace", str(ws), "--json"], capsys)
        costs.append(json.loads(out)["cost"])
    assert costs == ["0.3", "0.1"]


def test_import_of_an_unknown_format_fails_clearly(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "what.json"
    f.write_text('[1, 2]')
    code, _, err = run(["costs", "import", str(f), "--workspace", str(tmp_path / "w")], capsys)
    assert code == 1 and "unknown price file format" in err


def test_catalog_costs_override_on_the_command_line(ws: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cat = tmp_path / "catalog.yaml"
    cat.write_text("costs:\n  models:\n    claude-y: {input: '2', output: '10'}\n")
    code, out, _ = run(["costs", "quote", "--model", "claude-y", "--usage",
                        '{"input_tokens": 1000000}', "--catalog", str(cat), "--workspace",
                        str(ws), "--json"], capsys)
    assert code == 0 and json.loads(out)["cost"] == "2"
