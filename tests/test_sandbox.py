"""The method sandbox (harness/isolation/sandbox.py), scoped task.cached and the functional copy check, attacked by the
real hostile plugins in tests/plugins_hostile/ through the real harness (the CLI on digits-smoke).

Each attack has a control run without the sandbox that shows the attack works when nothing stops it, so a
test goes red when the sandbox stops protecting. On Linux these tests need bubblewrap (``make test``
installs it); they fail rather than skip without it, so CI cannot pass unprotected by accident.
"""

from __future__ import annotations

import ast
import base64
import copy
import dataclasses
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path

import pytest
import torch

from harness.core.results import read_results
from harness.isolation.method_call import method_family
from harness.isolation.plugin_import import import_plugin_file
from harness.isolation.plugins import load_plugin_file, load_plugins
from harness.isolation.sandbox import bwrap_argv, bwrap_problem, hidden_paths
from harness.pipeline.driver import RunOptions, run_suite
from harness.pipeline.oracle_copy import COPY_TV_FRACTION, oracle_copy_reason
from harness.protocol.methods import PluginError, get_method
from harness.training.cache import ArtifactCache
from harness.training.reference_models import get_oracle
from harness.training.workspace import Workspace

ROOT = Path(__file__).resolve().parent.parent
HOSTILE = ROOT / "tests" / "plugins_hostile"
CLI = [sys.executable, "-m", "harness.commands.cli"]
SMOKE = (ROOT / "harness" / "suites" / "digits-smoke.toml").read_text()
# digits-smoke with the accuracy evaluator only: these tests are about what a method can reach, not metrics.
FAST_SUITE = Path(tempfile.mkdtemp(prefix="unlearn-bench-sandbox-")) / "digits-smoke-fast.toml"
FAST_SUITE.write_text(re.sub(r"(?ms)^\[evaluate\].*", '[evaluate]\nevaluators = ["accuracy"]\n', SMOKE))


@pytest.fixture(scope="module", autouse=True)
def bwrap_required():
    if not sys.platform.startswith("linux"):
        pytest.skip("the bubblewrap sandbox is Linux-only (rows say sandbox=none elsewhere)")
    problem = bwrap_problem()
    if problem:
        pytest.fail(f"the method sandbox is unavailable: {problem}. `make test` installs bubblewrap; "
                    "see docs/reliability.md")


def cli(cwd: Path, results: Path, cache: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [*CLI, "run", "--suite", str(FAST_SUITE), "--seeds", "0", "--scenarios", "random-10", "--no-progress",
           "--no-references", "--results", str(results), "--cache-dir", str(cache), *args]
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, check=False, env=full_env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def rows_by_method(results: Path) -> dict[str, dict]:
    frame = read_results(results, "digits-smoke")
    assert frame["run_id"].is_unique
    return {r["method"]: r for r in frame.to_dict("records")}


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> Path:
    """A cache with the seed-0 original and both random-10 oracles, shared by the tests (copied when written)."""
    root = tmp_path_factory.mktemp("warm")
    cli(root, root / "results", root / "cache", "--methods", "original")
    return root / "cache"


def hostile_copy(tmp_path: Path, name: str, replace: tuple[str, str] | None = None) -> Path:
    """A copy of a hostile plugin in the test's folder (some of them try to modify their own file)."""
    text = (HOSTILE / name).read_text()
    if replace:
        assert replace[0] in text
        text = text.replace(*replace)
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


class Listener:
    """A TCP socket on this machine's loopback and an abstract unix socket; records who connects."""

    def __init__(self):
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.abstract = f"unlearn-bench-test-{uuid.uuid4().hex}"
        self.unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        self.port = self.tcp.getsockname()[1]
        self.connections: list[str] = []
        for sock in (self.tcp, self.unix):
            threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    def _accept(self, sock: socket.socket) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            self.connections.append(sock.family.name)
            conn.close()

    def close(self) -> None:
        self.tcp.close()
        self.unix.close()


# ---------------------------------------------------------------------------------------------- the attacks
@pytest.mark.slow  # ~20-30 s: three plugin sandboxes, and the scan walks the Python installation
def test_hostile_plugins_find_nothing_reach_nothing_and_write_nothing(tmp_path, warm):
    """Scan for checkpoints, talk to the network, write outside: each fails, the built-ins' rows are ok."""
    results, cache = tmp_path / "results", warm
    data_root = tmp_path / "data"  # a --data-root / UNLEARN_BENCH_DATA folder: hidden like the cache
    data_root.mkdir()
    torch.save({"state": {"w": torch.zeros(1)}}, data_root / "decoy.pt")
    home_canary = Path.home() / f".unlearn-bench-canary-{uuid.uuid4().hex}"
    harness_canary = ROOT / "harness" / f"_canary_{uuid.uuid4().hex}.py"  # the harness's own source
    site_canary = Path(torch.__file__).parent.parent / f"_canary_{uuid.uuid4().hex}.py"
    run_canary = tmp_path / "canary.txt"
    run_canary.write_text("untouched")
    targets = [run_canary, cache / "original" / "canary.pt", results / "canary", home_canary, harness_canary,
               site_canary]
    roots = [str(cache), str(results), str(data_root), str(tmp_path), "/usr/share/datasets", str(Path.home())]
    scan, net, write = (hostile_copy(tmp_path, n) for n in ("scan_steal.py", "net_probe.py", "write_outside.py"))
    listener = Listener()
    try:
        cli(tmp_path, results, cache, "--methods", "finetune,original", "--set", "finetune.epochs=2",
            "--plugin", str(scan), "--plugin", str(net), "--plugin", str(write),
            "--set", f"scan-steal.roots={os.pathsep.join(roots)}",
            "--set", f"net-probe.port={listener.port}", "--set", f"net-probe.abstract={listener.abstract}",
            "--set", f"write-outside.targets={os.pathsep.join(map(str, targets))}",
            env={"UNLEARN_BENCH_DATA": str(data_root)})
    finally:
        listener.close()
        for canary in (home_canary, harness_canary, site_canary):
            created = canary.exists()
            canary.unlink(missing_ok=True)
            assert not created, f"a sandboxed plugin created {canary}"
    rows = rows_by_method(results)
    assert {r["sandbox"] for r in rows.values()} == {"bwrap"}
    assert rows["scan-steal"]["status"] == "failed"
    error = rows["scan-steal"]["error"]
    assert "found 0 checkpoints" in error, error
    visible = ast.literal_eval(error.rsplit("visible of the given folders: ", 1)[1].rstrip(")"))
    assert visible == [str(Path.home())] or visible == [], visible  # home: only the Python install bound in it
    assert rows["net-probe"]["status"] == "failed" and "reached nothing" in rows["net-probe"]["error"]
    assert listener.connections == []
    assert rows["write-outside"]["status"] == "failed", rows["write-outside"]["error"]
    assert "could not write anywhere" in rows["write-outside"]["error"]
    assert run_canary.read_text() == "untouched" and write.read_text() == (HOSTILE / write.name).read_text()
    assert not (results / "canary").exists() and not (cache / "original" / "canary.pt").exists()
    assert rows["finetune"]["status"] == "ok" and rows["original"]["status"] == "ok"


def test_the_same_attacks_succeed_without_the_sandbox(tmp_path, warm):
    """Control: in-process (--no-isolation, sandbox 'off') the scan finds the oracle (and the copy check
    flags what it returns), the network answers and the write lands: the test above can go red."""
    results = tmp_path / "results"
    run_canary = tmp_path / "canary.txt"
    run_canary.write_text("untouched")
    scan, net, write = (hostile_copy(tmp_path, n) for n in ("scan_steal.py", "net_probe.py", "write_outside.py"))
    listener = Listener()
    try:
        cli(tmp_path, results, warm, "--no-isolation", "--methods", "original", "--plugin", str(scan),
            "--plugin", str(net), "--plugin", str(write), "--set", f"scan-steal.roots={warm / 'oracle'}",
            "--set", "scan-steal.everywhere=false", "--set", f"net-probe.port={listener.port}",
            "--set", f"net-probe.abstract={listener.abstract}", "--set", "net-probe.host=127.0.0.1",
            "--set", f"write-outside.targets={run_canary}")
    finally:
        listener.close()
    rows = rows_by_method(results)
    assert {r["sandbox"] for r in rows.values()} == {"off"}
    assert rows["scan-steal"]["status"] == "invalid" and rows["scan-steal"]["error"].startswith("integrity:")
    assert rows["net-probe"]["status"] == "ok" and sorted(listener.connections) == ["AF_INET", "AF_UNIX"]
    assert rows["write-outside"]["status"] == "ok" and "# written by write-outside" in run_canary.read_text()


def test_without_bubblewrap_the_rows_say_so(tmp_path, warm):
    """No bwrap on PATH: the run goes on unsandboxed and says so; UNLEARN_BENCH_SANDBOX=bwrap refuses."""
    results = tmp_path / "results"
    done = cli(tmp_path, results, warm, "--methods", "original,finetune", "--set", "finetune.epochs=1",
               env={"PATH": str(tmp_path)})
    assert "method runs are NOT sandboxed" in done.stderr and "bwrap is not installed" in done.stderr
    assert {r["sandbox"] for r in rows_by_method(results).values()} == {"none"}
    cmd = [*CLI, "run", "--suite", str(FAST_SUITE), "--seeds", "0", "--methods", "finetune", "--no-progress",
           "--no-references",
           "--results", str(tmp_path / "r2"), "--cache-dir", str(warm)]
    refused = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
                             env={**os.environ, "PATH": str(tmp_path), "UNLEARN_BENCH_SANDBOX": "bwrap"})
    assert refused.returncode == 2 and "UNLEARN_BENCH_SANDBOX=bwrap but bwrap is not installed" in refused.stderr


def test_a_noisy_oracle_copy_is_flagged_by_its_predictions(tmp_path, warm):
    """The oracle smuggled into the plugin's own source, returned with 0.1% weight noise: the weight check
    misses it, the functional check (predictions on the test split vs two retrains) does not."""
    from harness.protocol.suite import load_suite

    suite = load_suite(str(FAST_SUITE))
    data = suite.load_data()
    split = suite.split(data, "random-10", 0)
    cache = ArtifactCache(warm)
    ws = Workspace(suite, data, cache, torch.device("cpu"))
    oracle = get_oracle(ws, split, 0).model
    buffer = io.BytesIO()
    torch.save(oracle.state_dict(), buffer)
    plugin = hostile_copy(tmp_path, "oracle_noise.py",
                          ('ORACLE = ""', f'ORACLE = "{base64.b64encode(buffer.getvalue()).decode()}"'))
    results = tmp_path / "results"
    cli(tmp_path, results, warm, "--methods", "finetune", "--set", "finetune.epochs=2", "--plugin", str(plugin))
    rows = rows_by_method(results)
    row = rows["oracle-noise"]
    assert row["status"] == "invalid", row["error"]
    assert row["error"].startswith("integrity:") and "predictions on held-out examples" in row["error"]
    assert row["copy_tv"] < COPY_TV_FRACTION * row["oracle_pair_tv"] and row["copy_check"] == "weights+function"
    honest = rows["finetune"]
    assert honest["status"] == "ok" and honest["copy_tv"] > COPY_TV_FRACTION * honest["oracle_pair_tv"]
    # The same perturbation, rebuilt here: by weights alone it is not a copy (which is why the check exists).
    from harness.training.reference_models import get_original

    original = get_original(ws, 0).model
    noisy = copy.deepcopy(oracle)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in noisy.parameters():
            p.mul_(1 + 1e-3 * torch.randn(p.shape, generator=generator))
    assert oracle_copy_reason(noisy, oracle, original) is None


def test_a_plugin_cannot_read_or_replace_amuns_cached_artifacts(tmp_path, warm):
    """AMUN's variants share their adversarial set; a plugin asking for it by AMUN's name and parameters gets
    its own empty slot, and what it stores there never reaches AMUN."""
    cache = tmp_path / "cache"
    shutil.copytree(warm, cache)
    fast = ["--set", "amun.epochs=1", "--set", "amun.attack_steps=3", "--set", "amun-noretain.epochs=1",
            "--set", "amun-noretain.attack_steps=3"]
    cli(tmp_path, tmp_path / "r1", cache, "--methods", "amun,amun-noretain", *fast)
    first = rows_by_method(tmp_path / "r1")
    assert first["amun"]["status"] == "ok" and first["amun-noretain"]["status"] == "ok"
    assert len(list((cache / "derived-amun-adversarial").glob("*.pt"))) == 1  # shared by the variants
    poison = hostile_copy(tmp_path, "cache_poison.py")
    cli(tmp_path, tmp_path / "r2", cache, "--methods", "amun", *fast[:4], "--plugin", str(poison),
        "--set", "cache-poison.attack_steps=3")
    second = rows_by_method(tmp_path / "r2")
    assert second["cache-poison"]["status"] == "ok", second["cache-poison"]["error"]  # it read nothing of AMUN's
    assert len(list((cache / "derived-amun-adversarial").glob("*.pt"))) == 2  # its garbage sits apart
    assert second["amun"]["status"] == "ok"
    for metric in ("forget_acc", "retain_acc", "test_acc"):
        assert second["amun"][metric] == first["amun"][metric], metric  # AMUN read its own set again


def test_families_come_from_the_harness(tmp_path):
    """AMUN's variants share a family; a plugin's family is its file's, whatever its functions claim."""
    assert {method_family(get_method(n)) for n in ("amun", "amun-noretain", "amun-advonly", "amun-salun")} == \
        {"module:methods.amun"}
    spoof = tmp_path / "spoof.py"
    spoof.write_text("from harness import register_method\n\n"
                     "def fake(task):\n    return task.model\n\n"
                     "fake.__module__ = 'methods.amun'  # claims to be AMUN's\n"
                     "register_method('spoof-amun', needs_retain=False)(fake)\n")
    (name,) = load_plugin_file(spoof)
    family = method_family(get_method(name))
    assert family.startswith("plugin:spoof:") and family != "module:methods.amun"


def test_plugin_code_never_runs_in_the_harness_process(tmp_path):
    """Loading a plugin imports it in its sandbox: its module code cannot write here (the control can)."""
    marker = tmp_path / "marker"
    plugin = hostile_copy(tmp_path, "import_time.py", ('MARKER = ""', f"MARKER = {str(marker)!r}"))
    names, failures = load_plugins([str(plugin)], entry_points=False)
    assert names == ["import-time"] and failures == []
    assert not marker.exists()
    assert not [m for m in sys.modules if m.startswith("unlearn_bench_plugin_import_time")]
    with pytest.raises(PluginError, match="already registered"):  # the control: a real import runs it here
        import_plugin_file(plugin)
    assert marker.exists()


def test_a_plugin_cannot_claim_the_reference_kind(tmp_path):
    """References run in the harness process; a plugin claiming to be one would escape the sandbox."""
    path = tmp_path / "fake_reference.py"
    path.write_text("from harness import register_method\n\n"
                    "@register_method('fake-reference', kind='reference')\n"
                    "def fake(task):\n    return task.model\n")
    with pytest.raises(PluginError, match="reserved for the harness"):
        load_plugin_file(path)


def test_shadow_runs_are_sandboxed_too(tmp_path, digits_random, monkeypatch):
    """U-LiRA's shadow runs of a plugin go through the same sandbox: the plugin looks for the cache only
    after its first (main) run; under the sandbox it never sees it, without one the shadow run fails."""
    world = digits_random
    plugin = hostile_copy(tmp_path, "shadow_peek.py")
    names = load_plugin_file(plugin)
    suite = dataclasses.replace(world.suite, evaluate={**world.suite.evaluate, "evaluators": ["accuracy", "ulira"]})
    statuses = {}
    for mode in ("bwrap", "none"):
        monkeypatch.setenv("UNLEARN_BENCH_SANDBOX", mode)
        cache = tmp_path / f"cache-{mode}"  # U-LiRA caches a method's shadow runs: one cache per mode
        shutil.copytree(world.cache.root, cache)
        options = RunOptions(methods=names, seeds=[0], scenarios=["random-10"], results_root=tmp_path / mode,
                             cache_dir=cache, isolate=True, progress=False,
                             overrides={names[0]: {"folder": str(cache)}})
        row = run_suite(suite, options).rows[0]
        statuses[mode] = (row["status"], row["error"], row["sandbox"])
    assert statuses["bwrap"] == ("ok", "", "bwrap"), statuses["bwrap"]
    status, error, where = statuses["none"]
    assert (status, where) == ("failed", "none") and "in a shadow run" in error and "shadow-peek saw" in error


# ---------------------------------------------------------------------------------------------- the pieces
def test_a_closed_plugin_server_is_restarted_for_its_next_run(tmp_path, digits_random, monkeypatch):
    """Plugin fork servers beyond MAX_PLUGIN_SERVERS are closed; a worker of a closed one is replaced."""
    from harness.isolation.workers import Isolation, IsolationLimits, sandbox

    monkeypatch.setattr(sandbox, "MAX_PLUGIN_SERVERS", 1)
    world = digits_random
    names = []
    for stem in ("first", "second"):
        path = tmp_path / f"{stem}.py"
        path.write_text("from harness import register_method\n\n"
                        f"@register_method('lru-{stem}-{uuid.uuid4().hex[:6]}', needs_retain=False)\n"
                        "def method(task):\n    return task.model\n")
        names += load_plugin_file(path)
    def run(iso: Isolation, name: str) -> None:
        iso.unlearn(world.run(get_method(name)))

    with Isolation(IsolationLimits(timeout_s=120, memory_mb=2048)) as iso:
        run(iso, names[0])
        first_server = iso._workers[next(iter(iso._workers))].process.server
        run(iso, names[1])  # starts the second plugin's server, which closes the first one's
        assert not first_server.alive()
        run(iso, names[0])  # its worker died with its server: replaced, and the run is ok
        assert iso.restarts == 1


def test_the_sandbox_binds_the_environment_and_hides_harness_state(tmp_path, monkeypatch):
    """The bubblewrap command line: read-only binds only, no home or state folders, no network."""
    cache = Path.home() / ".cache" / "unlearn-bench"
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    argv = bwrap_argv([str(tmp_path / "plugin.py")], gpu=False)
    assert {"--unshare-all", "--unshare-user", "--disable-userns", "--clearenv", "--new-session",
            "--die-with-parent"} <= set(argv)
    assert argv[-2:] == ["--remount-ro", "/"] and "--bind" not in argv and "--dev-bind" not in argv
    sources = [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    for folder in (str(Path.home()), str(cache), str(tmp_path), "/usr/share", "/usr", "/", os.getcwd()):
        assert folder not in sources
    assert str(tmp_path / "plugin.py") in sources  # the method's own file, and nothing else of its folder
    assert "UNLEARN_BENCH_CACHE" not in json.dumps(argv)
    # Harness state inside a bound folder (here a PYTHONPATH entry) is masked with an empty tmpfs.
    (tmp_path / "pp" / "cache").mkdir(parents=True)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "pp"))
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "pp" / "cache"))
    assert str(tmp_path / "pp" / "cache") in hidden_paths()
    argv = bwrap_argv([], gpu=False)
    assert str(tmp_path / "pp") in [argv[i + 1] for i, a in enumerate(argv) if a == "--ro-bind"]
    masks = [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]
    assert str(tmp_path / "pp" / "cache") in masks
