"""The command line: clear errors (exit code 2), never a traceback, and nothing written on bad input."""

from typer.testing import CliRunner

from pipeline.cli import app

runner = CliRunner()


def test_bad_config_key_is_a_clear_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {path: x.csv}\ntrain: {epoch: 3}\n")
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 2
    assert "train.epoch: unknown key" in result.output and "Traceback" not in result.output


def test_bad_row_stops_before_anything_is_written(tmp_path):
    (tmp_path / "items.csv").write_text("id,text,label\n1,good,pos\n2,bad,maybe\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"output_dir: {tmp_path / 'runs'}\ndata: {{path: items.csv, classes: [pos, neg]}}\n")
    result = runner.invoke(app, ["run", str(cfg)])
    assert result.exit_code == 2
    out = " ".join(result.output.split())
    assert "items.csv" in out and "row 2" in out and "field 'label'" in out
    assert not (tmp_path / "runs").exists()
