"""``attnlab demo`` with tiny settings: outputs, reuse of a finished run, resumption of an unfinished one."""

from __future__ import annotations

from pathlib import Path

import pytest

from attnlab.tasks.demo import RESERVE_S, run_demo


def test_demo_writes_everything_and_reuses(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "demo"
    code, stdout, _ = cli("demo", "--out", out, "--steps", "5", "--sample-tokens", "30", "--no-progress")
    assert code == 0
    assert "sample before training" in stdout and "sample after training (step 5" in stdout
    for name in ("report.html", "attention.png", "attention.html", "loss.png", "samples.txt", "model/config.json"):
        assert (out / name).is_file(), name
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Before training" in page and "data:image/png;base64," in page and "attention.html" in page
    assert (out / "attention.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, stdout, _ = cli("demo", "--out", out, "--steps", "5", "--sample-tokens", "30", "--no-progress")
    assert code == 0 and "reusing the model trained earlier" in stdout and "sample before training" not in stdout
    assert "Before training" in (out / "report.html").read_text(encoding="utf-8")


def test_demo_resumes_after_the_time_budget(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    first = run_demo(out, steps=6, time_budget=RESERVE_S, sample_tokens=10, progress=False, quiet=True)
    assert not first.finished and 1 <= first.step < 6  # no time left: stopped after the first step, checkpointed
    second = run_demo(out, steps=6, time_budget=600, sample_tokens=10, progress=False, quiet=True)
    assert second.finished and second.step == 6 and not second.reused
    assert second.sample_before == first.sample_before  # the untrained sample is kept across the resumption


def test_fresh_refuses_to_delete_a_foreign_folder(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    (out / "model").mkdir(parents=True)
    (out / "model" / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an attnlab demo model folder"):
        run_demo(out, steps=2, fresh=True, progress=False, quiet=True)
    assert (out / "model" / "precious.txt").is_file()


def test_a_demo_folder_from_other_settings_is_retrained(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A demo folder written with another demo recipe (e.g. by an older attnlab) is replaced, not resumed."""
    from attnlab.tasks import lm

    out = tmp_path / "demo"
    monkeypatch.setitem(lm.LM_RECIPES, "demo", lm.LM_RECIPES["demo"].replace(positional="learned"))
    old = run_demo(out, steps=3, sample_tokens=10, progress=False, quiet=True)
    assert old.finished and (out / "model" / "checkpoints").is_dir()
    monkeypatch.setitem(lm.LM_RECIPES, "demo", lm.LM_RECIPES["demo"].replace(positional="rope"))
    new = run_demo(out, steps=3, sample_tokens=10, progress=False, quiet=True)
    assert new.finished and not new.reused and new.step == 3
    assert '"positional": "rope"' in (out / "model" / "config.json").read_text()
    again = run_demo(out, steps=3, sample_tokens=10, progress=False, quiet=True)
    assert again.reused  # same settings: the finished model is reused
