"""Checks on the outputs of `make model-flow` (run by it, or alone with `make test-model`).

Reads .deps/model-flow/results.json (written by evaluate.py from edgehost's own outputs).
"""
import json
import os

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DIR = os.environ.get("MODEL_FLOW_DIR", os.path.join(ROOT, ".deps", "model-flow"))
MODELS = ["teacher_f32", "teacher_dynamic", "teacher_int8", "pruned_int8", "student_f32", "student_int8"]


@pytest.fixture(scope="module")
def res():
    with open(os.path.join(DIR, "results.json")) as f:
        return json.load(f)


@pytest.mark.parametrize("name", MODELS)
def test_outputs_exist_and_load_in_edgehost(res, name):
    path = os.path.join(DIR, name + ".tflite")
    assert os.path.getsize(path) > 0
    assert name in res, f"{name} was not evaluated through edgehost"
    assert res[name]["n_test"] == 360
    # evaluated through edgehost: an accuracy far above chance (0.1) means it loaded and ran
    assert res[name]["accuracy"] > 0.9


def test_results_tables_written():
    for f in ("results.md", "results.csv", "test.npz", "train.json"):
        assert os.path.getsize(os.path.join(DIR, f)) > 0


def test_float32_accuracy(res):
    assert res["teacher_f32"]["accuracy"] >= 0.95


@pytest.mark.parametrize("name", ["teacher_int8", "pruned_int8"])
def test_int8_within_one_point_and_30_percent(res, name):
    f32 = res["teacher_f32"]
    assert res[name]["accuracy"] >= f32["accuracy"] - 0.01
    assert res[name]["size_bytes"] <= 0.30 * f32["size_bytes"]


def test_student_int8_close_to_student_f32(res):
    assert res["student_int8"]["accuracy"] >= res["student_f32"]["accuracy"] - 0.01


@pytest.mark.parametrize("name", ["teacher_int8", "pruned_int8", "student_int8"])
def test_int8_io(res, name):
    assert res[name]["input"] == "INT8" and res[name]["output"] == "INT8"


@pytest.mark.parametrize("name", MODELS)
def test_edgehost_agrees_with_litert(res, name):
    r = res[name]
    assert r["agreement"] >= 0.99, r
    assert r["accuracy"] == pytest.approx(r["litert_accuracy"], abs=0.006)
    # int8 outputs: one quantisation step (1/256) at most; float: XNNPACK vs LiteRT rounding
    assert r["max_abs_diff"] <= (1 / 256 + 1e-6 if r["output"] == "INT8" else 1e-4), r
