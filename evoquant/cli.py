"""The ``evoquant`` command line. User mistakes end as one line on stderr and exit status 2.

Only the standard library is imported before the arguments are parsed: ``--help`` is
instant, and Ctrl-C while torch loads ends with one line, not a traceback. SIGTERM
(what a preempted cluster job receives) stops a run as Ctrl-C does: the last
checkpoint stands, and one line says how to resume.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from evoquant import __version__
from evoquant.errors import RunStopped, UserError

log = logging.getLogger(__name__)

SIGTERM_STATUS = 128 + signal.SIGTERM
SIGINT_STATUS = 128 + signal.SIGINT


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program stands so that it unwinds as on Ctrl-C:
    workers stopped, Ray shut down, files closed."""


def raise_terminated(signum: int, frame: object) -> None:
    raise Terminated


DESCRIPTION = """\
Evolutionary mixed-precision post-training quantization: find per-layer bit-widths
that trade model size against accuracy.

  evoquant calibrate CONFIG   calibrate, and compare uniform bit-widths with FP32
  evoquant search CONFIG      run the NSGA-II search into runs/CONFIG_NAME
  evoquant resume RUN_DIR     continue a run from its latest checkpoint
  evoquant sensitivity CONFIG|RUN_DIR   each layer's error when it alone is requantized
  evoquant export RUN_DIR     write a front point as ONNX with Q/DQ (and TensorRT)

Settings of the config file can be overridden with --cfg-options key=value.
"""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions keep their line breaks; an option's help shows its default where it
    has one and the help does not already say it (ArgumentDefaultsHelpFormatter's rule,
    less the ``(default: None)`` of every flag whose default is the config's)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


def parse_cfg_options(pairs: Sequence[str]) -> dict:
    """``["search.pop_size=8", "seed=3"]`` -> ``{"search": {"pop_size": 8}, "seed": 3}``.

    mmengine's ``--cfg-options`` convention: a dotted key, ``=``, a value read as YAML
    (``8``, ``true``, ``[2, 4]``, ``null``; anything else is text). A pair without
    ``=`` or with an empty key is a UserError.
    """
    import yaml

    updates: dict = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        parts = key.split(".")
        if not sep or not all(parts):
            raise UserError(
                f"--cfg-options {pair!r}: expected key=value (search.pop_size=8)"
            )
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            raise UserError(
                f"--cfg-options {pair!r}: the value is not valid YAML"
            ) from None
        if value is None and text.strip().lower() not in ("null", "~"):
            value = text
        section = updates
        for part in parts[:-1]:
            section = section.setdefault(part, {})
            if not isinstance(section, dict):
                raise UserError(
                    f"--cfg-options {pair!r}: {part} is set to a value above"
                )
        section[parts[-1]] = value
    return updates


def apply_overrides(config, args: argparse.Namespace, flags: dict | None = None):
    """``config`` with the command's flags and its ``--cfg-options``, merged and checked
    in one place (``evoquant.config.with_overrides``): a wrong key or value is one
    line. ``--cfg-options`` wins over a flag for the same key; a flag not given
    (``None``) changes nothing, and neither does an explicit ``null`` there."""
    from evoquant.config import with_overrides

    updates = _merge_updates(
        flags or {}, parse_cfg_options(getattr(args, "cfg_options", None) or [])
    )
    if not updates:
        return config
    return with_overrides(config, updates, "command line")


def _merge_updates(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge_updates(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_dir_of(args: argparse.Namespace) -> Path:
    """``--run-dir`` as given, else ``runs/`` + ``--name`` or the config file's stem."""
    from evoquant.rundir import run_dir_for

    if args.run_dir:
        return Path(args.run_dir)
    return run_dir_for(args.name or Path(args.config).stem)


def require_writable(run_dir: Path, command: str) -> None:
    """A read-only run dir is refused up front, before any work is done for it."""
    if run_dir.is_dir() and not os.access(run_dir, os.W_OK):
        raise UserError(f"{run_dir} is read-only: {command} needs to write there")


def calibrate(args: argparse.Namespace) -> None:
    """Calibrate (stages 1 + 2) and compare the uniform configurations with FP32."""
    from evoquant.atomic import write_text_atomic
    from evoquant.config import load_config
    from evoquant.evaluate.fitness import GenomeFitness
    from evoquant.pipeline import prepare
    from evoquant.problem import validate_args
    from evoquant.rundir import RUN_FILE, UNIFORM_FILE, make_directory

    alpha = {"enabled": False} if args.no_alpha else {}
    config = apply_overrides(
        load_config(args.config), args, {"quant": {"alpha": alpha}}
    )
    validate_args(config.problem.name, config.problem.args)
    run_dir = make_directory(run_dir_of(args), "run directory")
    require_writable(run_dir, "calibrate")
    # the table of a search run is part of its results: never replace it from here
    prepared = prepare(
        config,
        run_dir,
        rebuild_stale=not (run_dir / RUN_FILE).exists(),
        progress=sys.stderr,
    )
    fitness = GenomeFitness(
        prepared.problem, prepared.model, prepared.table, prepared.layers, config.error
    )
    widths = [args.bits] if args.bits else [w for w, _ in prepared.table.bit_configs]
    rows = [{"config": "FP32"} | fitness(None)]
    for config_bits in prepared.table.bit_configs:
        if config_bits[0] in widths:
            genome = [config_bits] * len(prepared.layers)
            rows.append(
                {"config": f"W{config_bits[0]}A{config_bits[1]}"} | fitness(genome)
            )
    write_text_atomic(run_dir / UNIFORM_FILE, json.dumps(rows, indent=1))
    print_uniform_table(rows, config, run_dir)


BIT_COLUMNS = {"f_bits", "relative_cost", "compression", "avg_weight_bits", "megabytes"}


def print_uniform_table(rows: list[dict], config, run_dir: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    alpha = "alpha" if config.quant.alpha.enabled else "min/max (no alpha)"
    table = Table(
        title=f"{config.problem.name}: uniform configurations, "
        f"{config.quant.scheme} scheme, {alpha}"
    )
    metrics = [key for key in rows[0] if key not in BIT_COLUMNS | {"config", "error"}]
    for column in ["config", "F_bits", "relative cost", *metrics]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["config"],
            f"{row['f_bits']:.4g}",
            f"{row['relative_cost']:.4f}",
            *[f"{row[key]:.4g}" for key in metrics],
        )
    console = Console()
    console.print(table)
    console.print(
        f"error objective: {config.error}; table and uniform.json in {run_dir}"
    )


def search(args: argparse.Namespace) -> None:
    from evoquant.config import load_config
    from evoquant.driver import run_search

    overrides = {"generations": args.generations, "pop_size": args.pop_size}
    flags = {"seed": args.seed, "search": overrides} | evaluator_flags(args)
    config = apply_overrides(load_config(args.config), args, flags)
    run_dir = run_dir_of(args)
    plots = run_search(config, run_dir, show_progress=not args.quiet)
    print_finished(run_dir, plots)
    validate_finished(run_dir)


def resume(args: argparse.Namespace) -> None:
    from evoquant.config import load_config
    from evoquant.driver import run_search
    from evoquant.rundir import read_run_config

    run_dir = Path(args.run_dir)
    config = read_run_config(run_dir)
    require_writable(run_dir, "resume")
    if args.config:
        config = load_config(args.config)
    config = apply_overrides(config, args, evaluator_flags(args))
    plots = run_search(
        config,
        run_dir,
        resume=True,
        force=args.force,
        generations=args.generations,
        show_progress=not args.quiet,
    )
    print_finished(run_dir, plots)
    validate_finished(run_dir)


def sensitivity(args: argparse.Namespace) -> None:
    """Per-layer probes of a config (a new or its own run dir) or of a run dir."""
    from evoquant.config import load_config
    from evoquant.driver import run_sensitivity
    from evoquant.report.sensitivity import table_lines
    from evoquant.rundir import read_run_config

    target = Path(args.target)
    if target.is_dir():
        if args.name or args.run_dir:
            raise UserError(
                f"{target} is a run directory: --name and --run-dir go with a config"
            )
        run_dir, config = target, read_run_config(target)
        require_writable(run_dir, "sensitivity")
    else:
        config = load_config(target)
        args.config = target
        run_dir = run_dir_of(args)
    config = apply_overrides(config, args, evaluator_flags(args))
    model, table, plot = run_sensitivity(config, run_dir, args.base_bits)
    for line in table_lines(model):
        print(line)
    error = model.objectives[1]
    print(
        f"error increase over the base genome (all at {model.base_bits} bits, {error} "
        f"{model.base_error:.4g}, fitness batches); table {table}, heat map {plot}"
    )


def add_evaluator_flags(command: argparse.ArgumentParser) -> None:
    """Where ``search`` and ``resume`` score genomes; each flag overrides the config's ``evaluator``."""
    group = command.add_argument_group("evaluation")
    group.add_argument(
        "--backend",
        choices=["local", "ray"],
        help="in this process or on Ray (default: the config's, ray)",
    )
    group.add_argument(
        "--workers",
        type=int,
        help="Ray workers (default: every CPU, or every GPU for a CUDA model)",
    )
    group.add_argument(
        "--ray-address",
        help="join this Ray cluster; 'auto': the one 'ray start --head' made "
        "(default: a private local Ray instance)",
    )
    group.add_argument(
        "--gpus-per-worker",
        type=float,
        help="GPUs each worker reserves; a fraction shares a GPU "
        "(default: 1 for a CUDA model, else 0)",
    )
    group.add_argument(
        "--ray-dashboard",
        action="store_true",
        default=None,
        help="serve Ray's dashboard on 127.0.0.1 (private instance only; default: off)",
    )


def evaluator_flags(args: argparse.Namespace) -> dict:
    """The evaluation flags given on the command line, as config updates."""
    flags = {
        "backend": args.backend,
        "workers": args.workers,
        "ray_address": args.ray_address,
        "gpus_per_worker": args.gpus_per_worker,
        "ray_dashboard": args.ray_dashboard,
    }
    return {"evaluator": flags}


def print_finished(run_dir: Path, plots: Path) -> None:
    from rich.console import Console

    console = Console()
    console.print(f"search finished: plots in {plots}/, front in {run_dir}/front.csv")
    console.print(f"summary: {run_dir}/summary.md")


def status(args: argparse.Namespace) -> None:
    from rich.console import Console

    from evoquant.report.status import run_status

    info = run_status(args.run_dir)
    console = Console()
    console.print(
        f"{info['run_dir']}: {info['problem']}, generation {info['generation'] + 1}"
        f" of {info['generations']}, {info['evaluations']} evaluations"
        f" ({info['failed']} failed), front of {info['front_size']}"
    )
    if info["hypervolume"] is not None:
        console.print(f"hypervolume: {info['hypervolume']:.6g}")
    for label, point in info["best"].items():
        console.print(
            f"{label}: relative cost {point['relative_cost']:.4f}, error {point['error']:.4g}"
        )
    if info["eta_seconds"] is not None:
        console.print(f"ETA: {info['eta_seconds'] / 60:.1f} min")


def plot(args: argparse.Namespace) -> None:
    from evoquant.archive import Archive
    from evoquant.report.front import stored_configs
    from evoquant.report.run import RunReport
    from evoquant.rundir import ARCHIVE_FILE, PLOTS_DIR, RunDir

    run_dir = Path(args.run_dir)
    record = RunDir(run_dir).read()  # refuses a directory that holds no run
    require_writable(run_dir, "plot")
    owner = (record.run_id, record.scoring_digest)
    archive = Archive(run_dir / ARCHIVE_FILE, owner=owner, read_only=True)
    known = stored_configs(run_dir, record.genes)
    try:
        count = RunReport(
            run_dir, archive, record, lambda bits: known[tuple(bits)]
        ).redraw()
    finally:
        archive.close()
    if count == 0:
        raise UserError(f"{run_dir} has no finished generation to plot")
    print(f"redrew {count} generations in {run_dir / PLOTS_DIR}/")


def validate(args: argparse.Namespace) -> None:
    """Score the front and the uniform configurations on the validation batches."""
    from evoquant.validate import validate_run

    run_dir = Path(args.run_dir)
    require_writable(run_dir, "validate")
    print_validation(run_dir, validate_run(run_dir))


def validate_finished(run_dir: Path) -> None:
    """After a search: the held-out error, where the problem has validation batches."""
    from evoquant.validate import validate_run

    result = validate_run(run_dir, required=False)
    if result is not None:
        print_validation(run_dir, result)


def print_validation(run_dir: Path, result: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from evoquant.rundir import VALIDATION_FILE

    table = Table(
        title=f"{result['error']} on the fitness batches (search) and on "
        f"{result['validation_samples']} held-out validation samples"
    )
    for column in ["genome", "search", "held-out", "ratio"]:
        table.add_column(column, justify="right")
    uniform = [p for p in result["points"] if p["uniform"]]
    front = [p for p in result["points"] if not p["uniform"]]
    for i, point in enumerate(uniform + front):
        heldout = point["heldout"].get("error")
        search = point["search_error"]
        table.add_row(
            point["uniform"] or f"front {i - len(uniform)}",
            "-" if search is None else f"{search:.4g}",
            "failed" if heldout is None else f"{heldout:.4g}",
            f"{heldout / search:.3g}" if heldout is not None and search else "-",
        )
    console = Console()
    console.print(table)
    console.print(
        f"held-out scores in {run_dir / VALIDATION_FILE}, beside the search's in "
        f"{run_dir}/summary.md and front.csv"
    )


def export(args: argparse.Namespace) -> None:
    """Pick a front point, write it as ONNX with Q/DQ (and engines), validate, report."""
    from rich.console import Console
    from rich.table import Table

    from evoquant.export.report import headline
    from evoquant.export.run import export_run  # onnx loads only for this command

    report = export_run(args.run_dir, args.pick, args.out, build_engines=args.engine)
    console = Console()
    pick = report["pick"]
    metrics = ", ".join(
        f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
        for key, value in pick["metrics"].items()
    )
    console.print(f"picked front point {pick['index']} ({pick['rule']}): {metrics}")
    console.print(headline(report)[0].replace("**", ""), markup=False)
    table = Table(title="genome")
    for column in ["layer", "gene", "deployed", "precision", "promoted because"]:
        table.add_column(column)
    for layer in report["layers"]:
        table.add_row(
            layer["name"],
            "W{}A{}".format(*layer["searched"]),
            "W{}A{}".format(*layer["deployed"]),
            layer.get("engine_precision") or layer["precision"],
            layer["reason"],
        )
    console.print(table)
    for part in report["parts"]:
        for row in part["validation"]:
            console.print(
                f"{part['onnx']} {row['output']}: cosine {row['cosine']:.6f} to the "
                f"fake-quantized model (max abs error {row['max_abs_error']:.3g}), "
                f"{row['cosine_to_fp32']:.6f} to FP32"
            )
    console.print(
        f"{report['promotions']} promotion(s); graphs and REPORT.md in {report['export_dir']}/"
    )


def bench_engine(args: argparse.Namespace) -> None:
    from evoquant.export.bench import bench_engine as run_bench

    result = run_bench(args.engine, runs=args.runs, warmup=args.warmup)
    print(
        f"{result['engine']} on {result['device']} (TensorRT {result['tensorrt']}), "
        f"{result['runs']} runs after {result['warmup']} warm-up: mean "
        f"{result['mean_ms']:.4g} ms, p50 {result['p50_ms']:.4g} ms, "
        f"p99 {result['p99_ms']:.4g} ms"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def add_search_loop_options(command: argparse.ArgumentParser) -> None:
    """What ``search`` and ``resume`` share: the progress display, overrides, evaluator."""
    command.add_argument(
        "-q", "--quiet", action="store_true", help="no live progress display"
    )
    add_cfg_options(command)
    add_evaluator_flags(command)


def add_run_dir_flags(command: argparse.ArgumentParser) -> None:
    """Where a command given a config makes its run: ``--name`` under runs/ or ``--run-dir``."""
    where = command.add_mutually_exclusive_group()
    where.add_argument(
        "--name", help="run directory name under runs/ (default: the config's name)"
    )
    where.add_argument("--run-dir", help="the run directory itself, anywhere")


def add_cfg_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--cfg-options",
        nargs="+",
        metavar="KEY=VALUE",
        help="override config settings, a dotted key and a YAML value each: "
        "--cfg-options search.pop_size=8 seed=3 quant.alpha.enabled=false",
    )


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,  # the top level's default stands unless given here
        help="log progress on the terminal (run.log gets it always)",
    )

    parser = argparse.ArgumentParser(
        prog="evoquant", description=DESCRIPTION, formatter_class=Formatter
    )
    parser.add_argument(
        "--version", action="version", version=f"evoquant {__version__}"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log progress on the terminal"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str, **kwargs) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help,
            description=help[0].upper() + help[1:] + ".",
            parents=[common],
            formatter_class=Formatter,
            **kwargs,
        )

    command = add(
        "calibrate",
        "calibrate the quantizers (stages 1 and 2) and compare uniform bit-widths "
        "with FP32 ('quantize' is the old name)",
        aliases=["quantize"],
    )
    command.add_argument("config", help="the run's YAML config file")
    command.add_argument(
        "--bits",
        type=int,
        choices=[2, 4, 8, 16],
        help="only this weight bit-width (default: all)",
    )
    command.add_argument(
        "--no-alpha", action="store_true", help='min/max scales only (the "Q" variant)'
    )
    command.add_argument(
        "--run-dir",
        help="where the quantization table goes (default: runs/CONFIG_NAME)",
    )
    add_cfg_options(command)
    command.set_defaults(name=None)
    command.set_defaults(handler=calibrate)

    command = add("search", "run the NSGA-II mixed-precision search")
    command.add_argument("config", help="the run's YAML config file")
    add_run_dir_flags(command)
    command.add_argument("--seed", type=int, help="seed (default: the config's)")
    command.add_argument(
        "--generations", type=int, help="generations (default: the config's)"
    )
    command.add_argument(
        "--pop-size", type=int, help="population size (default: the config's)"
    )
    add_search_loop_options(command)
    command.set_defaults(handler=search)

    command = add("resume", "continue a run from its latest checkpoint")
    command.add_argument("run_dir", help="the run directory")
    command.add_argument(
        "--generations",
        type=int,
        help="run until this many generations (default: the config's)",
    )
    command.add_argument(
        "--config", help="a changed config to resume with (needs --force)"
    )
    command.add_argument("--force", action="store_true", help="accept a changed config")
    add_search_loop_options(command)
    command.set_defaults(handler=resume)

    command = add(
        "sensitivity",
        "measure each layer's error increase when it alone leaves the base width",
    )
    command.add_argument(
        "target", help="a YAML config (its run dir is created or reused) or a run dir"
    )
    add_run_dir_flags(command)
    command.add_argument(
        "--base-bits",
        type=int,
        choices=[2, 4, 8, 16],
        help="the base width (default: search.seeding.base_bits, 8)",
    )
    add_cfg_options(command)
    add_evaluator_flags(command)
    command.set_defaults(handler=sensitivity)

    command = add("status", "where a run stands")
    command.add_argument("run_dir", help="the run directory")
    command.set_defaults(handler=status)

    command = add("plot", "redraw a run's plots and reports")
    command.add_argument("run_dir", help="the run directory, where the plots go")
    command.set_defaults(handler=plot)

    command = add(
        "validate",
        "score the front and uniform configurations on the held-out batches",
    )
    command.add_argument(
        "run_dir", help="the run directory, where validation.json goes"
    )
    command.set_defaults(handler=validate)

    command = add("export", "export a front point to ONNX with Q/DQ (and TensorRT)")
    command.add_argument("run_dir", help="the run directory")
    command.add_argument(
        "--pick",
        default="knee",
        help="knee | min-error:BUDGET (0.15 or 4.5b) | max-compression:ERROR | "
        "index:N; :heldout after BUDGET or ERROR judges the held-out error",
    )
    command.add_argument("--out", help="output folder (default: RUN_DIR/export)")
    command.add_argument(
        "--engine", action="store_true", help="also build and time TensorRT engines"
    )
    command.set_defaults(handler=export)

    command = add("bench-engine", "latency of a TensorRT engine (mean, p50, p99)")
    command.add_argument("engine", help="the serialized TensorRT engine file")
    command.add_argument("--runs", type=int, default=200, help="timed runs")
    command.add_argument("--warmup", type=int, default=20, help="untimed runs first")
    command.add_argument("--json", help="also write the numbers to this JSON file")
    command.set_defaults(handler=bench_engine)
    return parser


def configure_console_logging(verbose: bool) -> None:
    """Warnings on the terminal (everything with -v); run.log gets every INFO line."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "evoquant-console"]:
        root.removeHandler(handler)
    console = logging.StreamHandler()
    console.set_name("evoquant-console")
    console.setFormatter(logging.Formatter("%(message)s"))
    console.setLevel(logging.INFO if verbose else logging.WARNING)
    root.addHandler(console)
    root.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    if threading.current_thread() is not threading.main_thread():
        return run_command(argv)  # only the main thread may set a signal handler
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        return run_command(argv)
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run its command; the exit status."""
    args = None
    try:
        args = build_parser().parse_args(argv)
        configure_console_logging(args.verbose)
        logging.raiseExceptions = False  # a full disk must not print logging tracebacks
        args.handler(args)
    except (UserError, RunStopped) as error:
        print(f"evoquant: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # full disk, permissions, paths the system refuses
        log.debug("operating-system error", exc_info=True)
        where = f"{error.filename}: " if error.filename else ""
        print(f"evoquant: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, Terminated)
        how = "terminated (SIGTERM)" if terminated else "interrupted"
        print(f"evoquant: {how}{resume_hint(args)}", file=sys.stderr)
        return SIGTERM_STATUS if terminated else SIGINT_STATUS
    return 0


def resume_hint(args: argparse.Namespace | None) -> str:
    """``; 'evoquant resume RUN_DIR' continues after generation N`` for a search
    stopped after its first checkpoint; nothing otherwise."""
    if args is None or args.handler not in (search, resume):
        return ""
    from evoquant.checkpoint import checkpoint_paths
    from evoquant.rundir import CHECKPOINT_DIR

    run_dir = run_dir_of(args) if args.handler is search else Path(args.run_dir)
    checkpoints = checkpoint_paths(run_dir / CHECKPOINT_DIR)
    if not checkpoints:
        return ""  # no generation finished: the search starts again from nothing
    last = checkpoints[-1].stem.removeprefix("gen_")
    return f"; 'evoquant resume {run_dir}' continues after generation {int(last)}"


if __name__ == "__main__":
    sys.exit(main())
