"""The one JSON Lines reader: every bad file is a ConfigError naming path:line, what was expected, how to fix."""

import json

import pytest

from rlvr._jsonl import read_json_records, read_jsonl, read_jsonl_located
from rlvr.envs.swe.errors import TaskError
from rlvr.errors import ConfigError


def _write(tmp_path, text, name="data.jsonl"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_reads_objects_and_skips_blank_lines(tmp_path):
    p = _write(tmp_path, '{"a": 1}\n\n   \n{"a": 2}\n')
    assert list(read_jsonl(p)) == [{"a": 1}, {"a": 2}]
    assert [w for w, _ in read_jsonl_located(p)] == [f"{p}:1", f"{p}:4"]


def test_bad_line_names_file_line_and_fix(tmp_path):
    p = _write(tmp_path, '{"a": 1}\n{oops\n{"a": 3}\n')
    with pytest.raises(ConfigError, match=r"data\.jsonl:2: not valid JSON \(.*\); expected one task object per line: "
                                          r"fix or remove this line"):
        list(read_jsonl(p))


@pytest.mark.parametrize("line, got", [("[1, 2]", "list"), ('"text"', "str"), ("3", "int"), ("null", "NoneType")])
def test_non_object_line(tmp_path, line, got):
    p = _write(tmp_path, '{"a": 1}\n' + line + "\n")
    with pytest.raises(ConfigError, match=rf"data\.jsonl:2: expected a JSON object \(document\), got {got}"):
        list(read_jsonl(p, what="document"))


def test_empty_file(tmp_path):
    p = _write(tmp_path, "\n\n")
    with pytest.raises(ConfigError, match=r"data\.jsonl holds no documents: every line is blank"):
        list(read_jsonl(p, what="document"))
    with pytest.raises(ConfigError, match="holds no trajectories"):
        list(read_jsonl(p, what="trajectory", plural="trajectories"))
    assert list(read_jsonl(p, allow_empty=True)) == []


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match=r"no such corpus file: '.*nope\.jsonl'; pass the path of an existing JSON Lines"):
        list(read_jsonl(tmp_path / "nope.jsonl", what="corpus"))
    with pytest.raises(ConfigError, match="no such task file"):  # a folder is not a file
        list(read_jsonl(tmp_path))


def test_error_class_is_chosen_by_the_caller(tmp_path):
    with pytest.raises(TaskError, match=r":1: not valid JSON"):
        list(read_jsonl(_write(tmp_path, "{oops\n"), error=TaskError))
    assert issubclass(TaskError, ConfigError)


def test_torn_tail_is_skipped_only_at_the_end(tmp_path):
    p = _write(tmp_path, '{"a": 1}\n{"a": 2}\n{"a": ')
    with pytest.raises(ConfigError, match=":3: not valid JSON"):
        list(read_jsonl(p))
    assert list(read_jsonl(p, skip_torn_tail=True)) == [{"a": 1}, {"a": 2}]
    middle = _write(tmp_path, '{"a": 1}\n{"a": \n{"a": 3}\n', "middle.jsonl")
    with pytest.raises(ConfigError, match=r"middle\.jsonl:2: not valid JSON"):
        list(read_jsonl(middle, skip_torn_tail=True))


def test_json_list_or_json_lines(tmp_path):
    lst = _write(tmp_path, json.dumps([{"a": 1}, {"a": 2}]), "list.json")
    assert read_json_records(lst) == [(f"{lst}[0]", {"a": 1}), (f"{lst}[1]", {"a": 2})]
    lines = _write(tmp_path, '{"a": 1}\n')
    assert read_json_records(lines) == [(f"{lines}:1", {"a": 1})]
    with pytest.raises(ConfigError, match=r"list\.json\[1\]: expected a JSON object \(task\), got int"):
        read_json_records(_write(tmp_path, "[{}, 3]", "list.json"))
    with pytest.raises(ConfigError, match=r"broken\.json:2: not valid JSON"):
        read_json_records(_write(tmp_path, '[{"a": 1},\n {oops}]', "broken.json"))
    with pytest.raises(ConfigError, match="holds no QA items: the list is empty"):
        read_json_records(_write(tmp_path, "[]", "empty.json"), what="QA item")
    with pytest.raises(ConfigError, match="no such task file"):
        read_json_records(tmp_path / "missing.json")
