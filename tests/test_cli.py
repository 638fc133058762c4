"""The gmm-service command line, against a live server."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from service.cli import main
from service.client import Client

from .api.helpers import TRUE_MEANS, three_blobs


def _csv(path, X, header=True):
    np.savetxt(path, X, delimiter=",", header="x,y" if header else "", comments="")
    return str(path)


def test_fit_predict_score_and_list_from_files(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    fitted = runner.invoke(
        main, ["fit", data, "-k", "3", "--random-state", "0", "--name", "cli", "--url", live_url]
    )
    assert fitted.exit_code == 0, fitted.output
    model = json.loads(fitted.stdout)
    assert (model["status"], model["n_components"], model["name"]) == ("ready", 3, "cli")

    points = tmp_path / "points.npy"
    np.save(points, TRUE_MEANS)
    predicted = runner.invoke(main, ["predict", model["id"], str(points), "--url", live_url])
    assert predicted.exit_code == 0, predicted.output
    lines = predicted.stdout.splitlines()
    assert lines[0] == "label" and sorted(int(v) for v in lines[1:]) == [0, 1, 2]

    with_proba = runner.invoke(
        main, ["predict", model["id"], str(points), "--probabilities", "--url", live_url]
    )
    assert with_proba.stdout.splitlines()[0] == "label,p0,p1,p2"

    scored = runner.invoke(main, ["score", model["id"], str(points), "--url", live_url])
    assert scored.exit_code == 0
    assert len(scored.stdout.splitlines()) == 1 + len(TRUE_MEANS)

    listed = runner.invoke(main, ["models", "--url", live_url, "--limit", "500"])
    assert model["id"] in listed.stdout


def test_errors_are_reported_with_the_field_at_fault(live_url, tmp_path):
    runner = CliRunner()
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2\n3,x\n")
    result = runner.invoke(main, ["fit", str(bad), "--url", live_url])
    assert result.exit_code != 0
    assert "#/data/1/1" in result.output or "not a number" in result.output


def test_every_command_has_help():
    runner = CliRunner()
    for command in main.commands:
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_versions_lists_the_history_and_activate_rolls_back(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    fitted = runner.invoke(main, ["fit", data, "-k", "3", "--random-state", "0", "--url", live_url])
    model_id = json.loads(fitted.stdout)["id"]
    again = _csv(tmp_path / "wide.csv", three_blobs(seed=1) * 2.0)
    with Client(live_url) as gmm:
        gmm.fit(model_id, data=np.loadtxt(again, delimiter=",", skiprows=1), wait=True)

    listed = runner.invoke(main, ["versions", model_id, "--url", live_url])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [["v2", "*", "fit"], ["v1", " ", "fit"]]

    rolled = runner.invoke(main, ["activate", model_id, "1", "--url", live_url])
    assert rolled.exit_code == 0 and "version 1" in rolled.stdout
    missing = runner.invoke(main, ["activate", model_id, "9", "--url", live_url])
    assert missing.exit_code != 0 and "no version 9" in missing.output


def test_select_prints_the_table_and_the_winner(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    result = runner.invoke(
        main,
        [
            "select",
            data,
            "-k",
            "2..4",
            "--covariance-types",
            "full,diag",
            "--random-state",
            "0",
            "--no-progress",
            "--url",
            live_url,
        ],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["k", "covariance", "conv"]
    rows = lines[1:-1]
    assert len(rows) == 6 and sum("*" in row for row in rows) == 1
    assert lines[-1].startswith("best by bic: k=3")


def test_select_rejects_a_malformed_grid(live_url, tmp_path):
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    result = CliRunner().invoke(main, ["select", data, "-k", "two", "--url", live_url])
    assert result.exit_code != 0 and "1..9" in result.output


def test_anomalies_prints_scores_p_values_and_explanations(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    fitted = runner.invoke(main, ["fit", data, "-k", "3", "--random-state", "0", "--url", live_url])
    model_id = json.loads(fitted.stdout)["id"]
    odd = tmp_path / "odd.csv"
    odd.write_text("x,y\n0,0\n30,30\n6,\n")
    result = runner.invoke(main, ["anomalies", model_id, str(odd), "--explain", "--url", live_url])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "score,p_value,is_anomaly,explanation"
    assert lines[1].split(",")[2] == "False" and lines[2].split(",")[2] == "True"
    assert len(lines) == 4 and lines[3].split(",")[3].startswith("0:")  # y was missing


def test_update_moves_a_fitted_model_with_the_rows_of_a_file(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    fitted = runner.invoke(main, ["fit", data, "-k", "3", "--random-state", "0", "--url", live_url])
    model_id = json.loads(fitted.stdout)["id"]
    new_rows = _csv(tmp_path / "new.csv", three_blobs(50, seed=3) + 0.5)
    updated = runner.invoke(
        main, ["update", model_id, new_rows, "--learning-rate", "0.2", "--url", live_url]
    )
    assert updated.exit_code == 0, updated.output
    model = json.loads(updated.stdout)
    assert model["active_version"] == 2
    assert model["fit_summary"]["update"]["learning_rate"] == 0.2
    listed = runner.invoke(main, ["versions", model_id, "--url", live_url])
    assert listed.stdout.splitlines()[0].split("\t")[:3] == ["v2", "*", "update"]


def test_update_reports_a_bad_learning_rate_with_its_field(live_url, tmp_path):
    runner = CliRunner()
    data = _csv(tmp_path / "blobs.csv", three_blobs())
    fitted = runner.invoke(main, ["fit", data, "-k", "3", "--random-state", "0", "--url", live_url])
    model_id = json.loads(fitted.stdout)["id"]
    result = runner.invoke(
        main, ["update", model_id, data, "--learning-rate", "0", "--url", live_url]
    )
    assert result.exit_code != 0 and "#/learning_rate" in result.output


def test_upload_streams_a_file_and_prints_the_dataset(live_url, tmp_path):
    path = tmp_path / "blobs.npy"
    np.save(path, three_blobs())
    result = CliRunner().invoke(main, ["upload", str(path), "--url", live_url])
    assert result.exit_code == 0, result.output
    dataset = json.loads(result.stdout)
    assert (dataset["name"], dataset["status"], dataset["n_features"]) == ("blobs.npy", "ready", 2)


def test_import_waits_for_the_job_and_prints_it(tmp_path):
    from .conftest import serve_live

    incoming = tmp_path / "incoming"
    incoming.mkdir()
    np.save(incoming / "blobs.npy", three_blobs())
    server = serve_live(tmp_path, import_roots=str(incoming))
    url = next(server)
    try:
        source = f"file://{incoming}/blobs.npy"
        result = CliRunner().invoke(main, ["import", source, "--format", "npy", "--url", url])
        assert result.exit_code == 0, result.output
        job = json.loads(result.stdout)
        assert (job["kind"], job["status"], job["result"]["n_samples"]) == (
            "import",
            "succeeded",
            600,
        )
        refused = CliRunner().invoke(
            main, ["import", "file:///etc/passwd", "--format", "csv", "--url", url]
        )
        assert refused.exit_code != 0 and "#/source" in refused.output
    finally:
        server.close()
