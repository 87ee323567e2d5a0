"""Cost of adding one plugin method to a finished suite, against the cost of the suite itself.

Runs the suite cold (fresh folders), then the same command with ``--plugin examples/my_method.py`` (a
tiny inline plugin if that example is absent): only the new method's runs execute, reusing every cached
original, oracle and shadow model.

    python bench/plugin_cost.py [--suite fmnist-quick] [--methods a,b]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _common import ROOT, hardware, run_cli, table

INLINE_PLUGIN = '''
from harness import register_method
from harness.train import cross_entropy_loss, optimize, sgd


@register_method("bench-inline-finetune", scenarios=("random", "class"), needs_retain=True)
def bench_inline_finetune(task, *, lr: float = 0.01, epochs: int = 1):
    """One epoch of fine-tuning on the retain set (bench fallback plugin)."""
    model = task.model
    optimize(model, sgd(model, lr), task.retain_loader(batch_size=128), cross_entropy_loss)
    return model.eval()
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="fmnist-quick")
    parser.add_argument("--methods", default="", help="the suite's methods (default: its full list)")
    args = parser.parse_args()
    print(f"# {args.suite}: adding one plugin vs the suite, {time.strftime('%Y-%m-%d %H:%M')}\n# {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        plugin = ROOT / "examples" / "my_method.py"
        if not plugin.is_file():
            plugin = Path(tmp, "inline_plugin.py")
            plugin.write_text(INLINE_PLUGIN)
        base = ["run", "--suite", args.suite, "--results", str(Path(tmp, "results")), "--cache-dir",
                str(Path(tmp, "cache")), "--no-progress"]
        suite_s = run_cli(base + (["--methods", args.methods] if args.methods else []))
        plugin_s = run_cli(base + ["--plugin", str(plugin)] + (["--methods", args.methods] if args.methods else []))
    print(f"# plugin: {plugin.relative_to(ROOT) if plugin.is_relative_to(ROOT) else 'inline fallback'}")
    print(table(["step", "seconds", "ratio to suite"],
                [["suite, cold", suite_s, 1.0], ["+ one plugin method", plugin_s, plugin_s / suite_s]]))


if __name__ == "__main__":
    main()
