"""Specification of `tuning.trial_process`: a trial runs in a forked child, when that is safe.

The forking cases run in a fresh interpreter that has not started
TensorFlow (this test process has, so here `run_isolated` runs in-process).
"""

import os
import subprocess
import sys
import textwrap

import pytest

from tuning.trial_process import IsolatedCall, can_fork, run_isolated

from conftest import REPO_ROOT

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks only on Linux")


def run_fresh(code):
    """Runs `code` in a new interpreter (TensorFlow not started); returns its stdout."""
    finished = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr[-2000:]
    return finished.stdout.strip()


@linux_only
def test_runs_the_function_in_another_process_and_returns_its_result():
    output = run_fresh("""
        import os
        from tuning.trial_process import run_isolated
        pid, doubled = run_isolated(lambda n: (os.getpid(), n * 2), 21)
        print(doubled, pid != os.getpid())
    """)
    assert output == "42 True"


@linux_only
def test_what_the_trial_changes_stays_in_its_process():
    output = run_fresh("""
        from tuning.trial_process import run_isolated
        allocated = []
        run_isolated(lambda: allocated.append(bytearray(50_000_000)))
        print(len(allocated))
    """)
    assert output == "0"


@linux_only
def test_an_error_in_the_trial_is_raised_again_with_the_childs_traceback():
    output = run_fresh("""
        from tuning.trial_process import run_isolated
        def diverge():
            raise ValueError("loss became nan")
        try:
            run_isolated(diverge)
        except ValueError as error:
            print(repr(error), "in diverge" in str(error.__cause__))
    """)
    assert output == "ValueError('loss became nan') True"


@linux_only
def test_a_trial_process_that_dies_raises_a_clear_error():
    output = run_fresh("""
        import os, signal
        from tuning.trial_process import TrialProcessError, run_isolated
        try:
            run_isolated(lambda: os.kill(os.getpid(), signal.SIGKILL))
        except TrialProcessError as error:
            print(error)
    """)
    assert output == ("the trial's process ended without a result "
                      "(killed by signal SIGKILL (out of memory?)).")


@linux_only
def test_calls_started_together_run_side_by_side(tmp_path):
    # Each call checks in, then waits for the other two: one after the other,
    # the first would give up waiting; side by side, all three meet.
    output = run_fresh(f"""
        import os, time
        from tuning.trial_process import IsolatedCall
        def meet(name):
            open(os.path.join({str(tmp_path)!r}, name), "w").close()
            deadline = time.monotonic() + 60
            while len(os.listdir({str(tmp_path)!r})) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            return len(os.listdir({str(tmp_path)!r})) == 3
        calls = [IsolatedCall(meet, name) for name in "abc"]
        print([call.result() for call in calls])
    """)
    assert output == "[True, True, True]"


@linux_only
def test_a_held_call_runs_more_functions_in_its_process_until_released():
    # What the first function leaves in memory is there for the next ones.
    output = run_fresh("""
        import os
        from tuning.trial_process import IsolatedCall
        kept = {}
        def remember(value):
            kept["value"] = value
            return os.getpid()
        def recall():
            return os.getpid(), kept["value"]
        call = IsolatedCall.held(remember, 7)
        pid = call.result()
        again, value = call.send(recall).result()
        call.release()
        try:
            os.kill(pid, 0)
            ended = False
        except ProcessLookupError:
            ended = True
        print(pid != os.getpid(), again == pid, value, ended)
    """)
    assert output == "True True 7 True"


@linux_only
def test_a_held_call_ends_when_released_while_another_waits():
    # The second child must not hold on to the first one's command pipe.
    output = run_fresh("""
        import os
        from tuning.trial_process import IsolatedCall
        first, second = IsolatedCall.held(os.getpid), IsolatedCall.held(os.getpid)
        pids = first.result(), second.result()
        first.release()
        alive = []
        for pid in pids[:1]:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        print(alive, second.send(os.getpid).result() == pids[1])
        second.release()
    """)
    assert output == "[] True"


@linux_only
def test_a_held_call_raises_its_errors_and_refuses_calls_once_released():
    output = run_fresh("""
        import os
        from tuning.trial_process import IsolatedCall, TrialProcessError
        call = IsolatedCall.held(int, "1")
        call.result()
        try:
            call.send(int, "not a number").result()
        except ValueError as error:
            print("raised:", error)
        print(call.send(int, "2").result())
        call.release()
        try:
            call.send(int, "3")
        except TrialProcessError as error:
            print("released:", error)
        unread = IsolatedCall.held(int, "1")
        try:
            unread.send(int, "2")
        except ValueError as error:
            print("unread:", error)
        unread.release()
        dead = IsolatedCall.held(int, "1")
        dead.result()
        try:
            dead.send(os._exit, 3).result()
        except TrialProcessError as error:
            print("died:", error)
        try:
            IsolatedCall(int, "1").send(int, "2")
        except ValueError as error:
            print("not held:", error)
    """)
    assert output.splitlines() == [
        "raised: invalid literal for int() with base 10: 'not a number'",
        "2",
        "released: the call's process has ended.",
        "unread: Read the call's result() before sending it another function.",
        "died: the trial's process ended without a result (exit status 3).",
        "not held: Only a call started with IsolatedCall.held runs more functions.",
    ]


def test_runs_in_this_process_once_tensorflow_has_started():
    import tensorflow as tf

    tf.constant(1.0) + 1.0  # starts TensorFlow's runtime here
    assert not can_fork()
    assert run_isolated(os.getpid) == os.getpid()


def test_an_error_of_a_call_in_this_process_is_raised_by_its_result():
    import tensorflow as tf

    tf.constant(1.0) + 1.0
    call = IsolatedCall(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        call.result()


@linux_only
def test_recording_a_trials_metrics_keeps_the_search_process_free_to_fork():
    # KerasTuner would build a Keras metric for `val_accuracy` to learn its
    # direction, starting TensorFlow here: later trials would then run in
    # this process and memory would grow again.
    output = run_fresh("""
        from tuning.trial_process import can_fork
        from tuning.keras_tuner_internals import set_project_dir
        from tuning.tuners import OBJECTIVE, RandomSearchOracle
        import tempfile
        oracle = RandomSearchOracle(objective=OBJECTIVE, max_trials=2, report=lambda line: None)
        oracle.verbose = 0
        set_project_dir(oracle, tempfile.mkdtemp(), "trials")
        hp = oracle.get_space()
        hp.Float("learning_rate", 1e-4, 1e-1)
        oracle.update_space(hp)
        trial = oracle.create_trial("chief")
        oracle.update_trial(trial.trial_id, {"val_data_loss": 0.3, "val_accuracy": 0.9,
                                             "val_auc": 0.95, "best_epoch": 4})
        print(can_fork(), trial.metrics.get_last_value("val_accuracy"))
    """)
    assert output == "True 0.9"
