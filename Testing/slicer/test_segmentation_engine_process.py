"""The generic engine runner with real subprocesses: events, results, one-line errors, tree kill, cleanup."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from DCASegmentationLib.engine_process import EngineProcess, engine_environment, one_line, process_options


def python_script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a killed child that nobody reaped yet is a zombie: gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_events_arrive_in_order_and_the_done_outputs_make_the_result(tmp_path):
    events, logs, results = [], [], []
    temp = tmp_path / "work"
    temp.mkdir()
    (temp / "scratch.nrrd").write_bytes(b"x")
    process = EngineProcess(python_script("""
        import json, sys
        print("plain log line")
        for k in range(3):
            print(json.dumps({"event": "progress", "stage": "windows", "done": k + 1, "total": 3}))
        print(json.dumps({"event": "warning", "message": "body crop found nothing"}))
        print(json.dumps({"event": "done", "outputs": {"labels": "/x/labels.nii.gz"}}))
        print("to stderr", file=sys.stderr)
    """), on_event=events.append, on_log=logs.append, on_finish=results.append, temp_dir=temp)
    process.start()
    result = process.wait(timeout=60)
    assert result is results[0]
    assert result.status == "done" and result.returncode == 0
    assert result.outputs == {"labels": "/x/labels.nii.gz"}
    assert result.warnings == ["body crop found nothing"]
    assert [e["done"] for e in events if e["event"] == "progress"] == [1, 2, 3]
    assert "plain log line" in logs and "to stderr" in logs
    assert not temp.exists()


def test_an_error_event_becomes_the_one_line_message(tmp_path):
    process = EngineProcess(python_script("""
        import json, sys
        print(json.dumps({"event": "error", "message": "model.json: class 'liver' colour must be\\n three integers"}))
        print("dcaseg segment: error: something else", file=sys.stderr)
        sys.exit(2)
    """))
    process.start()
    result = process.wait(timeout=60)
    assert result.status == "failed" and result.returncode == 2
    assert result.error == "model.json: class 'liver' colour must be three integers"


def test_without_an_error_event_the_last_stderr_line_is_the_message():
    process = EngineProcess(python_script("""
        import sys
        print("Traceback (most recent call last):", file=sys.stderr)
        print("RuntimeError: CUDA out of memory", file=sys.stderr)
        sys.exit(1)
    """))
    process.start()
    result = process.wait(timeout=60)
    assert (result.status, result.error) == ("failed", "RuntimeError: CUDA out of memory")


def test_a_command_that_cannot_start_fails_readably_and_cleans_up(tmp_path):
    temp = tmp_path / "work"
    temp.mkdir()
    process = EngineProcess([str(tmp_path / "no-such-python"), "-m", "dcaseg"], temp_dir=temp)
    process.start()
    assert process.result.status == "failed"
    assert "could not start" in process.result.error and "\n" not in process.result.error
    assert not temp.exists()


def test_cancel_kills_the_whole_process_tree_and_removes_the_temp_folder(tmp_path):
    temp = tmp_path / "work"
    temp.mkdir()
    events = []
    process = EngineProcess(python_script("""
        import json, subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        print(json.dumps({"event": "stage", "stage": "started", "child": child.pid}), flush=True)
        time.sleep(600)
    """), on_event=events.append, temp_dir=temp)
    process.start()
    while not events:
        assert process.poll(), "the script ended before reporting its child"
        time.sleep(0.05)
    parent, child = process.pid, events[0]["child"]
    assert pid_alive(parent) and pid_alive(child)
    process.cancel()
    result = process.wait(timeout=60)
    assert result.status == "cancelled"
    assert not pid_alive(parent) and not pid_alive(child)
    assert not temp.exists()


def test_the_engine_environment_lets_another_python_import_this_engine(tmp_path):
    """PythonSlicer does not search the extension's folders; the environment must point there."""
    import dcaseg

    base_python = Path(sys.base_prefix) / "bin" / "python3"
    if not base_python.is_file() or Path(sys.prefix) == Path(sys.base_prefix):
        pytest.skip("needs a virtual environment and its base interpreter")
    code = "import dcaseg; print(dcaseg.__file__)"
    bare = {"PATH": os.environ["PATH"], "PYTHONPATH": "/elsewhere"}
    without = subprocess.run([str(base_python), "-c", code], env=bare, cwd=tmp_path, capture_output=True, text=True)
    assert without.returncode != 0 and "No module named 'dcaseg'" in without.stderr
    env = engine_environment(bare)
    found = subprocess.run([str(base_python), "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert Path(found.stdout.strip()) == Path(dcaseg.__file__).resolve()
    assert env["PYTHONPATH"].endswith(os.pathsep + "/elsewhere")


@pytest.mark.parametrize("text,expected", [("a\n  b\tc", "a b c"), ("x" * 600, "x" * 499 + "…")])
def test_one_line_collapses_messages(text, expected):
    assert one_line(text) == expected


def test_on_windows_the_engine_starts_without_a_console_window_in_its_own_group():
    options = process_options("nt")
    # CREATE_NO_WINDOW (0x08000000) | CREATE_NEW_PROCESS_GROUP (0x00000200), the WinBase.h values
    assert options == {"creationflags": 0x08000000 | 0x00000200}
    if hasattr(subprocess, "CREATE_NO_WINDOW"):   # on Windows itself, the stdlib's own constants
        assert options["creationflags"] == subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP


def test_elsewhere_the_engine_gets_a_session_of_its_own():
    assert process_options("posix") == {"start_new_session": True}
    run = EngineProcess(python_script("""
        import json, os
        print(json.dumps({"event": "done", "outputs": {"sid": os.getsid(0), "pid": os.getpid()}}))
    """))
    run.start()
    result = run.wait(timeout=60)
    assert result.status == "done"
    assert result.outputs["sid"] == result.outputs["pid"]   # a new session: Cancel can end the whole tree
